"""The configurable pre-processing of the reference: settings, ``prepare()`` and its result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from correlax.data.records import Box
from correlax.io.image import Mammogram
from correlax.settings import DictSettings
from correlax.preprocess.steps import IntBox, breast_bbox, breast_on_right, clahe_fusion, resample, to_uint8


@dataclass(frozen=True)
class PreprocessSettings(DictSettings):
    """How a mammogram becomes the network's 3-channel image; stored with every checkpoint."""

    clahe_fusion: bool = True  # False: the grey image repeated in 3 channels
    canonical_flip: bool = False  # mirror so that the chest wall is on the left
    target_spacing: float | None = None  # mm per pixel after resampling; None keeps the native grid


@dataclass(frozen=True)
class PreparedImage:
    """A mammogram ready for the network, and how its pixel grid relates to the stored image."""

    image: np.ndarray  # (H, W, 3) uint8, whole image (not cropped)
    breast_box: IntBox  # x0, y0, x1, y1 (exclusive end) in prepared pixels
    scale: float  # prepared pixels per stored pixel along x (columns)
    flipped: bool  # mirrored left-right after resampling
    scale_y: float | None = None  # along y (rows) when it differs from ``scale``; None: same
    spacing: tuple[float, float] | None = None  # (row, column) mm of the prepared grid, when known

    def tensor(self) -> torch.Tensor:
        """The image as the network takes it: (3, H, W) float in [0, 1]."""
        return torch.from_numpy(self.image).permute(2, 0, 1).float().div_(255)

    def map_box(self, box: Box) -> Box:
        """Map (xmin, ymin, xmax, ymax) from stored-image pixels to prepared-image pixels."""
        sy = self.scale if self.scale_y is None else self.scale_y
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = x0 * self.scale, x1 * self.scale
        if self.flipped:
            width = self.image.shape[1]
            x0, x1 = width - x1, width - x0
        return x0, y0 * sy, x1, y1 * sy

    def to_stored(self, x: int, y: int) -> tuple[int, int]:
        """The stored-image pixel (column, row) under the prepared pixel (x, y): the inverse of :meth:`map_box`
        for pixel centres (flip undone, then the resampling)."""
        sy = self.scale if self.scale_y is None else self.scale_y
        cx = x + 0.5
        if self.flipped:
            cx = self.image.shape[1] - cx
        return int(cx / self.scale), int((y + 0.5) / sy)


def prepare(mammogram: Mammogram, settings: PreprocessSettings | None = None) -> PreparedImage:
    """8-bit conversion → optional resampling → optional flip → breast box → 3 channels.

    Resampling needs ``mammogram.spacing``; for files that do not state it (PNG, PGM), set it from
    the data set's record first (``dataclasses.replace(mammogram, spacing=record.spacing)``).
    Raises ValueError when ``target_spacing`` is set and the spacing is unknown.
    """
    settings = settings or PreprocessSettings()
    gray = to_uint8(mammogram.pixels)
    h, w = gray.shape
    spacing = mammogram.spacing
    if settings.target_spacing is not None:
        if spacing is None:
            cause = f"pixel spacing unknown, cannot resample to {settings.target_spacing} mm"
            raise ValueError(f"{mammogram.path}: {cause}")
        gray = resample(gray, spacing[0] / settings.target_spacing, spacing[1] / settings.target_spacing)
        spacing = (spacing[0] * h / gray.shape[0], spacing[1] * w / gray.shape[1])
    scale_x, scale_y = gray.shape[1] / w, gray.shape[0] / h
    flipped = settings.canonical_flip and breast_on_right(gray)
    if flipped:
        gray = np.ascontiguousarray(gray[:, ::-1])
    image = clahe_fusion(gray) if settings.clahe_fusion else np.repeat(gray[:, :, None], 3, axis=2)
    return PreparedImage(
        image=image,
        breast_box=breast_bbox(gray),
        scale=scale_x,
        flipped=flipped,
        scale_y=None if scale_y == scale_x else scale_y,
        spacing=spacing,
    )
