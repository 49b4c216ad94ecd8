import numpy as np
import pytest
import torch
from torch import nn

from correlax.explain.base import Explainer
from correlax.explain.baselines import (
    CenterExplainer,
    GradCamExplainer,
    OcclusionExplainer,
    RandomPointExplainer,
    find_target_layer,
)
from correlax.models.contract import ClassifierOutput

H, W = 96, 128
BREAST = (0, 8, 100, 88)  # x0, y0, x1, y1 (exclusive)
BLOB = (70, 40)  # x, y


class BlobModel(nn.Module):
    """Planted signal: 'mass' fires on bright (> 0.6) spots, 'no_finding' is its opposite."""

    labels = ("no_finding", "mass")

    def __init__(self) -> None:
        super().__init__()
        self.detect = nn.Conv2d(3, 4, 5, padding=2)
        self.mix = nn.Conv2d(4, 4, 1)  # the last conv: Grad-CAM's target layer
        self.head = nn.Linear(4, 2)
        with torch.no_grad():
            self.detect.weight.fill_(1 / 75)
            self.detect.bias.fill_(-0.6)
            self.mix.weight.copy_(torch.eye(4)[:, :, None, None])
            self.mix.bias.zero_()
            self.head.weight.copy_(torch.tensor([[-50.0] * 4, [50.0] * 4]))
            self.head.bias.copy_(torch.tensor([1.0, -1.0]))

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        feats = torch.relu(self.mix(torch.relu(self.detect(x)))).mean(dim=(2, 3))
        return ClassifierOutput(self.head(feats), feats)


def _image(blob=BLOB) -> torch.Tensor:
    img = torch.zeros(3, H, W)
    x0, y0, x1, y1 = BREAST
    img[:, y0:y1, x0:x1] = 0.3
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    img[:, (xx - blob[0]) ** 2 + (yy - blob[1]) ** 2 <= 16] = 1.0
    return img


def _peak(m: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(np.argmax(m), m.shape)
    return int(x), int(y)


def test_target_layer_is_last_conv_or_named():
    model = BlobModel()
    assert find_target_layer(model) is model.mix
    model.target_layer = model.detect
    assert find_target_layer(model) is model.detect
    with pytest.raises(ValueError, match="Conv2d"):
        find_target_layer(nn.Linear(2, 2))


def test_gradcam_peaks_on_the_planted_blob():
    explainer = GradCamExplainer(BlobModel(), window=32, stride=8, batch_size=16)
    assert isinstance(explainer, Explainer)
    maps = explainer.attribute(_image())["gradcam"]
    assert maps.shape == (2, H, W) and maps.dtype == np.float32
    x, y = _peak(maps[1])
    assert abs(x - BLOB[0]) <= 4 and abs(y - BLOB[1]) <= 4
    assert maps[0].max() < 1e-6  # no evidence for 'no_finding' anywhere
    x0, y0, x1, y1 = BREAST
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    assert not maps[:, outside].any()  # zero outside the breast box


def test_gradcam_equals_pytorch_grad_cam_on_the_whole_graph():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = BlobModel()
    explainer = GradCamExplainer(model, window=32, stride=8)
    windows = torch.rand(5, 3, 32, 32) * 0.6 + 0.3
    maps = explainer.window_maps(windows)
    assert all(p.requires_grad for p in explainer.net.parameters())  # unfrozen again
    with torch.no_grad():
        probs = torch.sigmoid(model(windows).logits)
    # the explainer runs a copy sharing the model's weights: its layer, not the caller's, is hooked
    with GradCAM(model=explainer.net, target_layers=[explainer.target_layer]) as cam:  # the library on the full graph
        for c in range(2):
            plain = torch.from_numpy(cam(input_tensor=windows, targets=[ClassifierOutputTarget(c)] * 5))
            torch.testing.assert_close(maps[:, c], plain * probs[:, c, None, None])
    assert maps[:, 1].amax() > 0.1


def test_occlusion_peaks_on_the_planted_blob():
    explainer = OcclusionExplainer(BlobModel(), window=32, patch=8, patch_stride=4)
    assert explainer.stride == 16
    maps = explainer.attribute(_image(), breast_box=BREAST)["occlusion"]
    assert maps.shape == (2, H, W)
    x, y = _peak(maps[1])
    assert abs(x - BLOB[0]) <= 6 and abs(y - BLOB[1]) <= 6


def test_center_peaks_at_the_breast_centre():
    maps = CenterExplainer(BlobModel.labels, sigma=10).attribute(_image())["center"]
    assert maps.shape == (2, H, W)
    x0, y0, x1, y1 = BREAST
    for m in maps:
        assert _peak(m) == ((x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2)


def test_random_points_are_in_the_breast_and_seeded():
    image = _image()
    first = RandomPointExplainer(BlobModel.labels, seed=3).attribute(image)["random"]
    again = RandomPointExplainer(BlobModel.labels, seed=3).attribute(image)["random"]
    assert first.shape == (2, H, W)
    np.testing.assert_array_equal(first, again)
    points = set()
    for seed in range(6):
        for m in RandomPointExplainer(BlobModel.labels, seed=seed).attribute(image)["random"]:
            x, y = _peak(m)
            assert image[0, y, x] > 0  # a breast pixel
            points.add((x, y))
    assert len(points) > 6  # the draws differ across seeds and classes
