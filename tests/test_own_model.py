"""A researcher's own classifier goes in (docs/own-model.md): timm and torchvision models straight in, the caller's
model left as it was, the contract's missing parts named, and ``correlax explain --model`` on TorchScript and timm files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from torch import nn

from correlax.cli.main import main
from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.baselines import GradCamExplainer
from correlax.explain.registry import create_explainer, create_explainers
from correlax.explain.settings import CORRELAX_METHODS
from correlax.models.adapter import ModelContractError, as_finding_model, softmax_as_sigmoid_logits

DOC = Path(__file__).resolve().parents[1] / "docs" / "own-model.md"
LABELS = ["normal", "benign", "malignant"]
SMALL = CorrelaxSettings(window=64, stride=32, n_masks=8)


def timm_resnet() -> nn.Module:
    """timm's smallest ResNet (0.4 M weights): what resnet18 is, at a fraction of the time on a shared CPU."""
    return timm.create_model("test_resnet", pretrained=False, num_classes=3)


def doc_examples() -> list[str]:
    """The python blocks of docs/own-model.md that end in ``maps = explainer.attribute(image)``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if "maps = explainer.attribute(image)" in b]


def breast_image(h: int = 96, w: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside = ((yy - h / 2) / (0.45 * h)) ** 2 + (xx / (0.8 * w)) ** 2 < 1  # a breast against the left edge
    grey = torch.where(inside, 0.5 + 0.1 * torch.sin(xx / 3.0) * torch.cos(yy / 4.0), torch.zeros(()))
    return grey.expand(3, h, w).clone()


@pytest.mark.parametrize("example", range(2), ids=["timm-resnet18", "torchvision-mobilenet-softmax"])
def test_the_documented_three_lines_run_as_written(example):
    blocks = doc_examples()
    assert len(blocks) == 2
    torch.manual_seed(0)
    scope = {"image": breast_image()}
    exec(blocks[example], scope)  # noqa: S102 -- the documentation's own code
    maps = scope["maps"]
    assert set(maps) == set(CORRELAX_METHODS)
    assert maps["correlax-prediction"].shape == (3, 96, 96) and maps["relax"].shape == (3, 96, 96)
    assert all(np.isfinite(m).all() for m in maps.values())
    assert 0 < maps["correlax-prediction"].max() <= 1


def state_of(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "formats": [(p.data_ptr(), p.is_contiguous(), p.requires_grad) for p in model.parameters()],
        "hooks": [len(m._forward_hooks) for m in model.modules()],
    }


def test_the_callers_model_is_left_as_it_was():
    model = timm_resnet().train()
    before = state_of(model)
    image = breast_image(64, 64)
    explainer = CorrelaxExplainer(model, SMALL, labels=LABELS, feature_layer=model.layer4)
    explainer.attribute(image)
    GradCamExplainer(model, window=64, stride=32, labels=LABELS, feature_layer="layer4").attribute(image)
    assert state_of(model) == before  # mode, weights, memory format, requires_grad, hooks
    copy_conv = next(m for m in explainer.model.modules() if isinstance(m, nn.Conv2d))
    assert not explainer.model.training and copy_conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("activation", ["sigmoid", "softmax"])
def test_window_predictions_are_the_models_own(activation):
    """One window covering the image: the prediction is the model's sigmoid (or softmax) of that window."""
    torch.manual_seed(1)
    model = torchvision.models.mobilenet_v3_small(num_classes=3).eval()
    image = breast_image(64, 64)
    explainer = CorrelaxExplainer(model, CorrelaxSettings(window=64, stride=32, n_masks=0), labels=LABELS,
                                  feature_layer="features", activation=activation, run=None)  # fmt: skip
    result = explainer.explain(image, breast_box=(0, 0, 64, 64))
    with torch.no_grad():
        logits = model(image[None]).double()
    expected = torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, dim=1)
    np.testing.assert_allclose(result.window_prediction[:, 0, 0], expected[0].numpy(), rtol=1e-4)


def test_softmax_logits_give_the_softmax_through_a_sigmoid():
    z = torch.tensor([[2.0, -1.0, 0.5], [30.0, 0.0, -30.0]])
    torch.testing.assert_close(torch.sigmoid(softmax_as_sigmoid_logits(z)), torch.softmax(z, dim=1))


def test_features_come_from_the_named_layer_or_timm_forward_features():
    torch.manual_seed(0)
    model = timm_resnet().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        hooked = as_finding_model(model, LABELS, "layer4", probe_size=64)(x)
        timm_head = as_finding_model(model, LABELS, probe_size=64)(x)
        fmap = model.forward_features(x)
    torch.testing.assert_close(hooked.features, fmap.mean(dim=(2, 3)))
    torch.testing.assert_close(timm_head.features, model.forward_head(fmap, pre_logits=True))
    torch.testing.assert_close(hooked.logits, model(x))


def test_a_batch_gives_the_maps_of_each_image():
    explainer = CorrelaxExplainer(timm_resnet(), SMALL.replace(n_masks=2), labels=LABELS)
    one, other = breast_image(64, 64), breast_image(64, 64).flip(2)
    batch = explainer.attribute(torch.stack([one, other]))
    alone = explainer.attribute(other)
    assert batch["rise"].shape == (2, 3, 64, 64)
    np.testing.assert_allclose(batch["correlax-prediction"][1], alone["correlax-prediction"], atol=1e-6)
    assert len(explainer.explain(torch.stack([one, other]))) == 2
    with pytest.raises(ValueError, match="one .* per image"):
        explainer.attribute(torch.stack([one, other]), breast_box=(0, 0, 64, 64))


def test_a_0_255_image_is_warned_about():
    explainer = CorrelaxExplainer(timm_resnet(), SMALL.replace(n_masks=0), labels=LABELS)
    with pytest.warns(UserWarning, match="divide a 0-255 image by 255"):
        explainer.attribute(breast_image(64, 64) * 255)


class Plain(nn.Module):
    """Logits alone, no timm head, no labels."""

    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        self.head = nn.Linear(4, n)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CorrelaxExplainer(Plain(), SMALL), r"Plain has no labels attribute: give labels=\[...\]"),
        (lambda: CorrelaxExplainer(Plain(), SMALL, labels=LABELS), r"no forward_features/forward_head \(timm\): give feature_layer=.*body, head"),
        (lambda: CorrelaxExplainer(Plain(), SMALL, labels=LABELS, feature_layer="neck"), r"Plain has no module 'neck' for feature_layer"),
        (lambda: CorrelaxExplainer(Plain(), SMALL, labels=LABELS, feature_layer=nn.ReLU()), r"feature_layer ReLU is not a module of Plain"),
        (lambda: CorrelaxExplainer(Plain(5), SMALL, labels=LABELS, feature_layer="body"), r"logits of shape \(2, 5\) .* expected \(2, 3\)"),
        (lambda: GradCamExplainer(Plain(), window=64, labels=LABELS), r"no forward_features/forward_head"),
        (lambda: CorrelaxExplainer(nn.Linear(3, 3), SMALL, labels=LABELS, feature_layer=""), r"probe forward of a \(2, 3, 64, 64\) batch .* failed"),
    ],
    ids=["no-labels", "no-features", "unknown-layer", "foreign-layer", "wrong-label-count", "gradcam-too", "forward-fails"],
)
def test_a_model_without_the_needed_parts_gets_a_named_error(build, message):
    with pytest.raises(ModelContractError, match=message):
        build()


def test_registry_factories_take_what_they_need():
    model = timm_resnet()
    center = create_explainer("center", labels=LABELS)  # no model, no settings
    assert center.labels == tuple(LABELS) and center.methods == ("center",)
    with pytest.raises(TypeError):
        create_explainer("random", labels=LABELS, window=64)
    built = create_explainers(["correlax-prediction", "gradcam", "random"], model, SMALL, seed=3, labels=LABELS,
                              feature_layer="layer4")  # fmt: skip
    assert [e.name for e in built] == ["correlax", "gradcam", "random"]
    assert built[0].labels == tuple(LABELS) and built[1].target_layer is built[1].model.model.layer4
    assert built[2].seed == 3


# ---- correlax explain --model on TorchScript and timm files

CLI_LABELS = "no_finding\nmass  # the second output\n\ncalcification\n"
FAST = ["--window", "32", "--stride", "16", "--masks", "4", "--batch-size", "32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    torch.save(model.state_dict(), root / "weights.pth")
    with pytest.warns(FutureWarning):  # torch.jit.script is deprecated, still what users hold
        torch.jit.save(torch.jit.script(model), root / "scripted.pt")
    (root / "labels.txt").write_text(CLI_LABELS)
    image = (breast_image(72, 60)[0] * 255).to(torch.uint8).numpy()
    import cv2

    (root / "images").mkdir()
    cv2.imwrite(str(root / "images" / "img0.png"), image)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torchscript", "timm"])
def test_explain_cli_takes_a_torchscript_or_timm_file_with_a_labels_file(files, tmp_path, capsys, kind):
    model = ["--model", str(files / "scripted.pt")] if kind == "torchscript" else [
        "--model", str(files / "weights.pth"), "--arch", "test_resnet"]  # fmt: skip
    out = tmp_path / "out"
    args = ["explain", *model, "--labels-file", str(files / "labels.txt"), "--out", str(out), str(files / "images"), *FAST]
    assert main(args) == 0, capsys.readouterr().out
    z = np.load(out / "img0.npz")
    assert list(z["labels"]) == ["no_finding", "mass", "calcification"]
    assert z["prediction"].shape == (3, 72, 60) and np.isfinite(z["corr_pred"]).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "{root}/scripted.pt", "--feature-layer", "layer4"], "TorchScript model takes no forward hook"),
        (["--model", "{root}/weights.pth"], "not a TorchScript file .* give --arch NAME"),
        (["--model", "{root}/weights.pth", "--arch", "resnet18"], "weights do not fit timm 'resnet18' with 3 classes"),
        (["--model", "{root}/weights.pth", "--arch", "no_such_net"], "--arch 'no_such_net'"),
        (["--model", "{root}/scripted.pt", "--labels-file", "{root}/bad-labels.txt"], r"bad-labels.txt: line 2: unknown label 'tumour'"),
        (["--model", "{root}/weights.pth", "--arch", "test_resnet", "--no-labels"], "give its --labels-file too"),
    ],
    ids=["hook-on-torchscript", "state-dict-without-arch", "wrong-arch", "unknown-arch", "bad-labels", "arch-without-labels"],
)
def test_explain_cli_names_what_is_wrong_with_ones_own_model(files, tmp_path, capsys, extra, message):
    (files / "bad-labels.txt").write_text("mass\ntumour\n")
    extra = [a.format(root=files) for a in extra]
    labels = [] if "--no-labels" in extra or "--labels-file" in extra else ["--labels-file", str(files / "labels.txt")]
    extra = [a for a in extra if a != "--no-labels"]
    assert main(["explain", *extra, *labels, "--out", str(tmp_path / "out"), str(files / "images"), *FAST]) == 2
    assert re.search(message, capsys.readouterr().out)
