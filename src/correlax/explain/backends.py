"""Where the network's forward runs: PyTorch, or on the CPU ONNX Runtime or OpenVINO.

On this project's 2-core CPUs ONNX Runtime ran EfficientNet-Lite0 at fp32 2-4x faster than PyTorch fp32, and on a
CPU with bf16 units OpenVINO's bf16 inference about 2x faster again (benchmarks/cpu_backends.py measures them side
by side). The classifier is exported once per explainer (opset 17, dynamic batch) into memory and run with as many
threads as torch.
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


def numpy_batch(x: torch.Tensor) -> np.ndarray:
    """A batch as the exported graph takes it: contiguous float32 on the CPU."""
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


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
        logits, features = self.session.run(["logits", "features"], {"x": numpy_batch(x)})
        return ClassifierOutput(torch.from_numpy(logits), torch.from_numpy(features))


class OpenVinoForward:
    """The exported graph compiled by OpenVINO for the CPU, at fp32 or bf16 inference precision (bf16 is fast only
    on a CPU with bf16 units: AVX512_BF16 or AMX)."""

    def __init__(self, model: nn.Module, window: int, precision: str = "fp32", threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as e:
            raise ImportError("the openvino backend needs openvino: pip install 'correlax[cpu]'") from e
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"the openvino backend runs fp32 or bf16, not {precision}")
        core = ov.Core()
        graph = core.read_model(model=export_onnx(model, window), weights=b"")  # the ONNX bytes hold the weights
        config = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision]}  # fmt: skip
        self.compiled = core.compile_model(graph, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.labels = tuple(model.labels)

    def __call__(self, x: torch.Tensor) -> ClassifierOutput:
        out = self.request.infer({0: numpy_batch(x)})
        logits, features = (np.array(out[o], dtype=np.float32) for o in self.compiled.outputs)  # copies: buffers are reused
        return ClassifierOutput(torch.from_numpy(logits), torch.from_numpy(features))
