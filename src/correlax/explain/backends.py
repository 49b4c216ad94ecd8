"""Where the network's forward runs: PyTorch, or ONNX Runtime on the CPU.

On this project's 2-core CPU ONNX Runtime ran EfficientNet-Lite0 at 128 px faster than PyTorch fp32, also with
channels-last (benchmarks/bench_film.py measures both side by side). The classifier is exported once per
explainer (opset 17, dynamic batch) into memory and run by an ``InferenceSession`` with as many threads as torch.
"""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import torch
from torch import nn

from correlax.models.contract import ClassifierOutput

OPSET = 17


def export_onnx(model: nn.Module, window: int) -> bytes:
    """The classifier as an ONNX graph: input ``x`` (B, 3, window, window) float32, outputs ``logits``, ``features``."""
    model = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)  # the caller's model untouched
    param = next(iter(model.parameters()), None)
    example = torch.rand(2, 3, window, window, device=param.device if param is not None else "cpu")
    buffer = io.BytesIO()
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; it needs no onnxscript
        torch.onnx.export(
            model, (example,), buffer, input_names=["x"], output_names=["logits", "features"],
            dynamic_axes={"x": batch, "logits": batch, "features": batch}, opset_version=OPSET, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


class OnnxForward:
    """A :class:`~correlax.models.contract.FindingModel`-like callable running the exported graph on the CPU."""

    def __init__(self, model: nn.Module, window: int, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError("the onnx backend needs onnxruntime: pip install 'correlax[cpu]'") from e
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle threads sleep rather than spin: on a CPU shared with other jobs spinning takes their cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.labels = tuple(model.labels)
        self.session = ort.InferenceSession(export_onnx(model, window), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> ClassifierOutput:
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        logits, features = self.session.run(["logits", "features"], {"x": batch})
        return ClassifierOutput(torch.from_numpy(logits), torch.from_numpy(features))
