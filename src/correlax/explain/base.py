"""The interface every explainer shares, CorRELAX and the baselines alike.

As in captum and pytorch-grad-cam, an explainer is an object built around a model whose
``attribute`` call takes an input and returns attributions. Here the input is one pre-processed
full mammogram, a float tensor (3, H, W) in [0, 1], and the result maps a method name (for example
``"correlax-prediction"``, ``"gradcam"``) to per-class heatmaps of shape (L, H, W) on the image's
pixel grid, one per label of the model in the model's label order. ``breast_box`` (x0, y0, x1, y1,
exclusive end) is the region to explain; by default the explainer finds it itself (largest Otsu component).

For the map store an explainer also says what its maps depend on (``settings_key``), what it keeps
of one image (``entry``: the maps, or more, as CorRELAX's window statistics) and how the maps come
back from that (``maps_of``).
"""

from __future__ import annotations

from correlax.geometry import PixelBox

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
import torch



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

    def attribute(self, image: torch.Tensor, breast_box: PixelBox | None = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def entry(self, image: torch.Tensor, breast_box: PixelBox | None = None) -> dict[str, np.ndarray]:
        return self.attribute(image, breast_box)

    def maps_of(self, entry: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {m: np.asarray(entry[m], dtype=np.float32) for m in self.methods}
