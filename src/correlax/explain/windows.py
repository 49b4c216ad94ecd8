"""The window grid of docs/method.md §4: the breast crop padded by W/2, a window centred every S pixels.

A window's centre sits at crop pixel (i*S, j*S); in the padded crop its top-left corner is
(i*S, j*S), so the windows are a plain strided view of the padded tensor (no copies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from correlax.preprocess import breast_bbox

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, exclusive end, in image pixels


def image_grey(image: torch.Tensor) -> np.ndarray:
    """The (H, W) uint8 grey image of a (3, H, W) network input in [0, 1] (mean of its channels)."""
    return (image.mean(0) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def breast_box_of(image: torch.Tensor, box: Box | None = None) -> Box:
    """``box`` checked against the (3, H, W) image, or, when None, the image's own breast box (the largest
    Otsu component, as in pre-processing)."""
    _, height, width = image.shape
    return check_box(box if box is not None else breast_bbox(image_grey(image)), height, width)


@dataclass(frozen=True)
class WindowGrid:
    box: Box
    window: int
    stride: int

    @property
    def crop_shape(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return y1 - y0, x1 - x0

    @property
    def shape(self) -> tuple[int, int]:
        """(gh, gw) = (ceil(Hc/S), ceil(Wc/S))."""
        h, w = self.crop_shape
        return math.ceil(h / self.stride), math.ceil(w / self.stride)

    @property
    def padded_shape(self) -> tuple[int, int]:
        h, w = self.crop_shape
        return h + self.window, w + self.window


def check_box(box: Box, height: int, width: int) -> Box:
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValueError(f"breast box {box} is empty or outside the {height}x{width} image")
    return x0, y0, x1, y1


def pad_crop(image: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """The breast crop of a (C,H,W) image, zero-padded by W/2 on every side."""
    x0, y0, x1, y1 = grid.box
    half = grid.window // 2
    return F.pad(image[:, y0:y1, x0:x1], (half, half, half, half))


def window_view(padded: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """All windows as a (gh, gw, C, W, W) view into ``padded`` (C, Hc+W, Wc+W)."""
    gh, gw = grid.shape
    w, s = grid.window, grid.stride
    view = padded.unfold(1, w, s).unfold(2, w, s)  # (C, nh, nw, W, W), nh >= gh, nw >= gw
    return view[:, :gh, :gw].permute(1, 2, 0, 3, 4)


def window_fraction(mask: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """Fraction of True pixels of a (H,W) image mask inside each window: (gh, gw)."""
    padded = pad_crop(mask[None].float(), grid)
    gh, gw = grid.shape
    frac = F.avg_pool2d(padded[None], kernel_size=grid.window, stride=grid.stride)[0, 0]
    return frac[:gh, :gw]
