"""The ONNX Runtime and OpenVINO backends: the same logits and features as PyTorch, and the same CorRELAX maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.settings import RunSettings
from correlax.explain.backends import OnnxForward, OpenVinoForward
from correlax.labels import LABELS
from correlax.models import create_model

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny", LABELS).eval()


def test_logits_and_features_agree_with_torch(tiny):
    x = torch.rand(5, 3, 32, 32)
    with torch.inference_mode():
        want = tiny(x)
    got = OnnxForward(tiny, 32, threads=1)(x)  # exported with batch 2: the batch is dynamic
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.features, want.features, atol=1e-4, rtol=0)


def test_engine_maps_agree_with_the_torch_path(tiny):
    image = torch.rand(3, 48, 64)
    base = CorrelaxSettings(window=32, stride=16, n_masks=16)
    torch_result = CorrelaxExplainer(tiny, base, run=RunSettings(batch_size=32, channels_last=False)).explain(image, (0, 0, 64, 48))
    onnx_run = RunSettings(batch_size=32, channels_last=False, backend="onnx")
    onnx_result = CorrelaxExplainer(tiny, base, run=onnx_run).explain(image, (0, 0, 64, 48))
    assert onnx_result.passes == torch_result.passes
    for name in ("window_prediction", "prediction", "corr_pred", "corr_dist", "relax", "rise"):
        np.testing.assert_allclose(getattr(onnx_result, name), getattr(torch_result, name), atol=1e-3, err_msg=name)


def test_onnx_backend_is_fp32_only(tiny):
    with pytest.raises(ValueError, match="onnx"):
        CorrelaxExplainer(tiny, CorrelaxSettings(window=32, stride=16, precision="bf16"), run=RunSettings(backend="onnx"))


def test_openvino_agrees_with_torch_at_fp32_and_runs_bf16(tiny):
    pytest.importorskip("openvino")
    x = torch.rand(5, 3, 32, 32)
    with torch.inference_mode():
        want = tiny(x)
    got = OpenVinoForward(tiny, 32, "fp32", threads=1)(x)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.features, want.features, atol=1e-4, rtol=0)
    half = OpenVinoForward(tiny, 32, "bf16", threads=1)(x[:3])  # another batch size: the batch is dynamic
    assert half.logits.dtype == torch.float32 and half.logits.shape == (3, len(LABELS))
    torch.testing.assert_close(half.logits, want.logits[:3], atol=0.1, rtol=0.05)  # bf16 keeps 8 bits of mantissa
    image = torch.rand(3, 48, 64)
    base = CorrelaxSettings(window=32, stride=16, n_masks=16)
    torch_result = CorrelaxExplainer(tiny, base, run=RunSettings(batch_size=32, channels_last=False)).explain(image, (0, 0, 64, 48))
    ov_result = CorrelaxExplainer(tiny, base, run=RunSettings(batch_size=32, backend="openvino")).explain(image, (0, 0, 64, 48))
    for name in ("window_prediction", "prediction", "corr_pred", "corr_dist", "relax", "rise"):
        np.testing.assert_allclose(getattr(ov_result, name), getattr(torch_result, name), atol=1e-3, err_msg=name)
    with pytest.raises(ValueError, match="openvino"):
        OpenVinoForward(tiny, 32, "fp16")


def test_host_work_runs_on_one_thread_beside_an_exported_network_and_the_setting_is_restored(tiny):
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        for backend, during in (("onnx", 1), ("torch", 2)):
            runner = CorrelaxExplainer(tiny, CorrelaxSettings(window=32, stride=16, n_masks=4),
                                       run=RunSettings(batch_size=4, channels_last=False, backend=backend)).runner  # fmt: skip
            seen.clear()
            runner.stream(8, lambda a, b: (torch.rand(b - a, 3, 32, 32), None),
                          lambda a, b, probs, feats, extra: seen.append(torch.get_num_threads()))  # fmt: skip
            assert seen == [during, during], backend
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
