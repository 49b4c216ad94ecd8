"""Baseline explainers, scored under exactly the same protocol and data as CorRELAX.

- ``GradCamExplainer`` ("gradcam"): pytorch-grad-cam's GradCAM on every window of CorRELAX's grid
  (same window side and stride), one class at a time. GradCAM rescales each window's map to [0, 1],
  which would make a window without any evidence as bright as one with a lesion, so each window's
  map is weighted by the window's predicted probability for the class before stitching.
- ``OcclusionExplainer`` ("occlusion"): captum's Occlusion (a zero patch slid over each window,
  attribution = logit drop) on a coarser window grid to stay affordable.
- ``CenterExplainer`` ("center") and ``RandomPointExplainer`` ("random"): a Gaussian bump at the
  breast-box centre, or at a seeded, uniformly drawn breast pixel (one per class): what pointing
  without looking gives.

Windowed maps are stitched by averaging the per-window maps where windows overlap, then placed back
into full-image coordinates (zero outside the breast box). None of these maps is on a probability
scale, so the Pointing Game scores them without a threshold (the thresholds belong to CorRELAX).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from correlax.explain.base import MapExplainer
from correlax.explain.kernel import OverlapAverage, place
from correlax.explain.windows import WindowGrid, breast_box_of, image_grey, pad_crop, window_view
from correlax.geometry import PixelBox
from correlax.models.adapter import as_finding_model, model_device
from correlax.preprocess import breast_mask


class LogitsOnly(nn.Module):
    """Wraps a model returning ``ClassifierOutput`` so that it returns the logits alone (what captum and
    pytorch-grad-cam call)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits


def find_target_layer(model: nn.Module) -> nn.Module:
    """``model.target_layer`` when the model names one, else its last ``nn.Conv2d``."""
    layer = getattr(model, "target_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d and no target_layer for Grad-CAM")
    return convs[-1]


class _WindowedExplainer(MapExplainer):
    """Cuts the breast crop into CorRELAX's windows, explains them in batches, stitches the maps.

    ``model``: a correlax model, or any classifier returning logits with ``labels``, ``feature_layer`` and
    ``activation`` (:func:`correlax.models.adapter.as_finding_model`); the explainer works on a copy sharing its
    weights, so the caller's model keeps its mode and memory format.
    """

    def __init__(
        self,
        model: nn.Module,
        window: int = 256,
        stride: int = 32,
        batch_size: int = 32,
        *,
        labels: Sequence[str] | None = None,
        feature_layer: str | nn.Module | None = None,
        activation: str = "sigmoid",
    ) -> None:
        self.model = as_finding_model(model, labels, feature_layer, activation, probe_size=window)
        self.labels = self.model.labels
        self.window, self.stride, self.batch_size = window, stride, batch_size
        self.device = model_device(model)
        self.methods = (self.name,)

    def settings_key(self) -> dict:
        return {"window": self.window, "stride": self.stride}

    def window_maps(self, windows: torch.Tensor) -> torch.Tensor:
        """(B, 3, W, W) windows on the model's device -> (B, L, W, W) maps."""
        raise NotImplementedError

    def attribute_image(self, image: torch.Tensor, breast_box: PixelBox | None) -> dict[str, np.ndarray]:
        _, h, w = image.shape
        box = breast_box_of(image, breast_box)
        grid = WindowGrid(box, self.window, self.stride)
        view = window_view(pad_crop(image, grid), grid)  # (gh, gw, 3, W, W)
        gh, gw = grid.shape
        stitched = OverlapAverage(grid, len(self.labels))
        for start in range(0, gh * gw, self.batch_size):
            ids = torch.arange(start, min(start + self.batch_size, gh * gw))
            batch = view[ids // gw, ids % gw].to(self.device)
            stitched.add(ids, self.window_maps(batch).detach().float().cpu())
        return {self.name: place(stitched.result(), box, h, w).numpy()}


class GradCamExplainer(_WindowedExplainer):
    """Grad-CAM per window and class, weighted by the window's probability, stitched over the grid.

    Grad-CAM needs the gradient of a logit at the target layer only, so the network runs with its
    weights frozen and the target layer's output cut from the graph above it: the forward records the
    head alone, each class's backward stops at the target layer, and one forward serves every class.
    The maps are pytorch-grad-cam's on the unfrozen network, one call per class (same activations,
    same gradients), at a fraction of the cost.
    """

    name = "gradcam"

    def __init__(self, model: nn.Module, window: int = 256, stride: int = 32, batch_size: int = 32, **model_options) -> None:
        """``model_options``: ``labels``, ``feature_layer`` (also Grad-CAM's target layer; default: the model's
        ``target_layer``, else its last ``nn.Conv2d``), ``activation``."""
        super().__init__(model, window, stride, batch_size, **model_options)
        self.net = LogitsOnly(self.model)
        self.target_layer = find_target_layer(self.model)

    def window_maps(self, windows: torch.Tensor) -> torch.Tensor:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        maps = torch.empty(len(windows), len(self.labels), self.window, self.window)
        with head_only_graph(self.net, self.target_layer), GradCAM(model=self.net, target_layers=[self.target_layer]) as cam:
            # GradCAM.forward per class, sharing one forward pass: the classes differ only in the backward
            recorded = cam.activations_and_grads
            logits = recorded(windows)
            probs = torch.sigmoid(logits.detach().float()).cpu()
            for c in range(len(self.labels)):
                recorded.gradients = []
                logits[:, c].sum().backward(retain_graph=c < len(self.labels) - 1)
                targets = [ClassifierOutputTarget(c)] * len(windows)
                grayscale = cam.aggregate_multi_layers(cam.compute_cam_per_layer(windows, targets, eigen_smooth=False))
                maps[:, c] = torch.from_numpy(grayscale) * probs[:, c, None, None]
        return maps


@contextmanager
def head_only_graph(net: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Within the block, ``net``'s weights take no gradient and ``layer``'s output is a fresh leaf that does:
    autograd records only what follows ``layer``. Registered before pytorch-grad-cam's hooks, so those see the
    leaf."""
    frozen = [p for p in net.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    handle = layer.register_forward_hook(lambda module, args, output: output.detach().requires_grad_(True))
    try:
        yield
    finally:
        handle.remove()
        for p in frozen:
            p.requires_grad_(True)


class OcclusionExplainer(_WindowedExplainer):
    """captum Occlusion per window: a zero ``patch``×``patch`` square slid with ``patch_stride``.

    Defaults keep it affordable: windows every W/2 pixels and a W/4 patch every W/8, i.e. 49
    occluded forwards per window (CorRELAX uses 1280 masks per window every W/8 pixels).
    """

    name = "occlusion"

    def __init__(
        self,
        model: nn.Module,
        window: int = 256,
        stride: int | None = None,
        patch: int | None = None,
        patch_stride: int | None = None,
        batch_size: int = 8,
        **model_options,
    ) -> None:
        super().__init__(model, window, stride or window // 2, batch_size, **model_options)
        self.net = LogitsOnly(self.model)
        self.patch = patch or window // 4
        self.patch_stride = patch_stride or window // 8

    def settings_key(self) -> dict:
        return {**super().settings_key(), "patch": self.patch, "patch_stride": self.patch_stride}

    def window_maps(self, windows: torch.Tensor) -> torch.Tensor:
        from captum.attr import Occlusion

        b, n_labels = len(windows), len(self.labels)
        with torch.no_grad():
            # target=None: one attribution per (window, label), computed from the same forwards
            attr = Occlusion(self.net).attribute(
                windows,
                sliding_window_shapes=(3, self.patch, self.patch),
                strides=(3, self.patch_stride, self.patch_stride),
                baselines=0.0,
                target=None,
                perturbations_per_eval=max(1, 64 // b),
            )
        if attr.shape[0] != b * n_labels:
            raise RuntimeError(f"captum Occlusion returned shape {tuple(attr.shape)} for {b} windows x {n_labels} labels")
        return attr.reshape(b, n_labels, *attr.shape[1:]).sum(dim=2)


def gaussian_bump(shape: tuple[int, int], x: float, y: float, sigma: float) -> np.ndarray:
    """exp(-d²/2σ²) around (x, y) on an (H, W) grid; its maximum is at the pixel (x, y)."""
    h, w = shape
    gy = np.exp(-((np.arange(h, dtype=np.float32) - y) ** 2) / (2 * sigma**2))
    gx = np.exp(-((np.arange(w, dtype=np.float32) - x) ** 2) / (2 * sigma**2))
    return np.outer(gy, gx).astype(np.float32)


class _PointExplainer(MapExplainer):
    """A Gaussian bump at one point per class: what pointing without looking gives."""

    def __init__(self, labels, sigma: float) -> None:
        self.labels, self.sigma = tuple(labels), sigma
        self.methods = (self.name,)

    def settings_key(self) -> dict:
        return {"sigma": self.sigma}

    def points(self, image: torch.Tensor, box: PixelBox) -> list[tuple[float, float]]:
        """One (x, y) per label."""
        raise NotImplementedError

    def attribute_image(self, image: torch.Tensor, breast_box: PixelBox | None) -> dict[str, np.ndarray]:
        _, h, w = image.shape
        points = self.points(image, breast_box_of(image, breast_box))
        return {self.name: np.stack([gaussian_bump((h, w), x, y, self.sigma) for x, y in points])}


class CenterExplainer(_PointExplainer):
    """Points at the centre of the breast box, for every class."""

    name = "center"

    def __init__(self, labels, sigma: float = 64.0) -> None:
        super().__init__(labels, sigma)

    def points(self, image: torch.Tensor, box: PixelBox) -> list[tuple[float, float]]:
        x0, y0, x1, y1 = box
        return [((x0 + x1 - 1) // 2, (y0 + y1 - 1) // 2)] * len(self.labels)


class RandomPointExplainer(_PointExplainer):
    """Points at a uniformly drawn breast pixel (``breast_mask``, inside the breast box), one per class.

    The draw is seeded by ``seed`` and the image's content, so an image gets the same points
    whatever the order in which a batch visits it.
    """

    name = "random"

    def __init__(self, labels, seed: int = 0, sigma: float = 16.0) -> None:
        super().__init__(labels, sigma)
        self.seed = seed

    def settings_key(self) -> dict:
        return {**super().settings_key(), "seed": self.seed}

    def points(self, image: torch.Tensor, box: PixelBox) -> list[tuple[float, float]]:
        x0, y0, x1, y1 = box
        pixels = image.detach().cpu().numpy()
        rng = np.random.default_rng([self.seed, zlib.crc32(np.ascontiguousarray(pixels[:, ::7, ::7]).tobytes())])
        ys, xs = np.nonzero(breast_mask(image_grey(image))[y0:y1, x0:x1])
        if len(xs) == 0:  # an empty breast box: fall back to any pixel of it
            ys, xs = np.divmod(np.arange((y1 - y0) * (x1 - x0)), x1 - x0)
        picks = rng.integers(0, len(xs), size=len(self.labels))
        return [(x0 + xs[i], y0 + ys[i]) for i in picks]
