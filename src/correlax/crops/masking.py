"""CorRELAX-style masks as a training augmentation, so that masked views are not out of distribution.

The masks are the explainer's (:func:`correlax.masks.mask_grids`, bilinearly upsampled, the
same fills); the crop's labels stay as they are. By default only No Finding crops are masked: a mask
can hide a lesion while its label still says "lesion", which teaches the classifier that hiding changes
nothing (docs/method.md §12 measures both).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from correlax.masks import apply_masks, mask_grids, upsample
from correlax.settings import MASK_AUG_CROPS, MASK_FILLS

_ID_RANGE = 1 << 62


@dataclass(frozen=True)
class MaskAugmentation:
    """Mask a ``fraction`` of the crops (of the No Finding crops only, with ``on="normal"``)."""

    fraction: float
    fill: str = "black"
    on: str = "normal"
    grid: int = 8
    keep_prob: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"mask augmentation fraction must be in [0, 1], got {self.fraction}")
        if self.fill not in MASK_FILLS:
            raise ValueError(f"mask fill must be one of {MASK_FILLS}, got {self.fill!r}")
        if self.on not in MASK_AUG_CROPS:
            raise ValueError(f"mask augmentation applies to one of {MASK_AUG_CROPS}, got {self.on!r}")

    def applies_to(self, normal: bool) -> bool:
        """Whether the augmentation may mask a crop that is (``normal``) or is not a No Finding crop."""
        return self.on == "all" or normal

    def __call__(self, crop: torch.Tensor, normal: bool) -> torch.Tensor:
        """The (3, S, S) crop, masked with probability ``fraction`` when the augmentation applies to it.
        Draws come from torch's global generator (seeded per data-loader worker by Lightning)."""
        if not self.applies_to(normal) or torch.rand(()) >= self.fraction:
            return crop
        window_id, mask_id = torch.randint(0, _ID_RANGE, (2, 1))
        grids = mask_grids(self.seed, window_id, mask_id, self.grid, self.keep_prob)
        return apply_masks(crop[None], upsample(grids, crop.shape[-1]), self.fill, self.grid)[0]
