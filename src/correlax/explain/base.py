"""The interface every explainer shares, CorRELAX and the baselines alike.

As in captum and pytorch-grad-cam, an explainer is an object built around a model whose
``attribute`` call takes an input and returns attributions. Here the input is one pre-processed
full mammogram, a float tensor (3, H, W) in [0, 1], and the result maps a method name (for example
``"correlax-prediction"``, ``"gradcam"``) to per-class heatmaps of shape (L, H, W) on the image's
pixel grid, one per label of the model in the model's label order. ``breast_box`` (x0, y0, x1, y1,
exclusive end) is the region to explain; by default the explainer finds it itself (largest Otsu component).
A batch (B, 3, H, W) gives maps (B, L, H, W), with ``breast_box`` None or one box per image.

Every explainer built around a model takes it as captum's and pytorch-grad-cam's do: ``Explainer(model, ...,
labels=[...], feature_layer=...)`` on any classifier returning logits (:func:`correlax.models.adapter.as_finding_model`).

For the map store an explainer also says what its maps depend on (``settings_key``), what it keeps
of one image (``entry``: the maps, or more, as CorRELAX's window statistics) and how the maps come
back from that (``maps_of``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from correlax.geometry import PixelBox



@runtime_checkable
class Explainer(Protocol):
    """What every explainer offers the pipelines: maps of an image by method name, and map store entries."""
    name: str  # registry name, also the map store's method name
    methods: tuple[str, ...]  # the method names ``attribute`` returns

    def settings_key(self) -> dict: ...

    def attribute(self, image: torch.Tensor, breast_box: PixelBox | None = None) -> dict[str, np.ndarray]: ...

    def entry(self, image: torch.Tensor, breast_box: PixelBox | None = None) -> dict[str, np.ndarray]: ...

    def maps_of(self, entry: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class MapExplainer:
    """Defaults for explainers whose stored entry is their maps."""

    name = ""
    methods: tuple[str, ...] = ()

    def settings_key(self) -> dict:
        return {}

    def attribute(
        self, image: torch.Tensor, breast_box: PixelBox | Sequence[PixelBox | None] | None = None
    ) -> dict[str, np.ndarray]:
        """Maps by method name: (L, H, W) for an image (3, H, W), (B, L, H, W) for a batch (B, 3, H, W)."""
        if image.ndim == 4:
            maps = [self.attribute(one, box) for one, box in zip(image, batch_boxes(image, breast_box))]
            return {m: np.stack([one[m] for one in maps]) for m in maps[0]}
        check_image(image)
        return self.attribute_image(image, breast_box)

    def attribute_image(self, image: torch.Tensor, breast_box: PixelBox | None) -> dict[str, np.ndarray]:
        """The maps of one checked image (3, H, W)."""
        raise NotImplementedError

    def entry(self, image: torch.Tensor, breast_box: PixelBox | None = None) -> dict[str, np.ndarray]:
        return self.attribute(image, breast_box)

    def maps_of(self, entry: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {m: np.asarray(entry[m], dtype=np.float32) for m in self.methods}


def check_image(image: torch.Tensor) -> None:
    """ValueError unless a float image (3, H, W); a warning when its values pass 1 (a 0–255 image, not divided)."""
    if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise ValueError(f"expected a float image (3, H, W) in [0, 1], got {image.dtype} {tuple(image.shape)}")
    top = float(image.max())
    if top > 1.001:
        warnings.warn(f"image values reach {top:g}; the explainers take [0, 1] (divide a 0-255 image by 255)", stacklevel=3)


def batch_boxes(images: torch.Tensor, boxes: Sequence[PixelBox | None] | None) -> Sequence[PixelBox | None]:
    """One breast box (or None) per image of a batch (B, 3, H, W)."""
    if boxes is None:
        return [None] * len(images)
    if len(boxes) != len(images) or not all(b is None or np.size(b) == 4 for b in boxes):
        raise ValueError(f"a batch of {len(images)} images takes breast_box=None or one (x0, y0, x1, y1) per image")
    return boxes
