"""The interface every explainer shares, CorRELAX and the baselines alike.

As in captum and pytorch-grad-cam, an explainer is an object built around a model whose
``attribute`` call takes an input and returns attributions. Here the input is one pre-processed
full mammogram, a float tensor (3, H, W) in [0, 1], and the result maps a method name (for example
``"correlax-prediction"``, ``"gradcam"``) to per-class heatmaps of shape (L, H, W) on the image's
pixel grid, one per label of the model in the model's label order. ``breast_box`` (x0, y0, x1, y1,
exclusive end) is the region to explain; by default the explainer finds it itself (largest Otsu component).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class Explainer(Protocol):
    def attribute(
        self, image: torch.Tensor, breast_box: tuple[int, int, int, int] | None = None
    ) -> dict[str, np.ndarray]: ...
