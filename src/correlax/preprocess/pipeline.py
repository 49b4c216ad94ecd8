"""The configurable pre-processing of the reference: settings, ``prepare()`` and its result."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from correlax.geometry import AnnotationBox, PixelBox
from correlax.io.image import ImageReadError, Mammogram
from correlax.settings import DictSettings
from correlax.preprocess.steps import breast_bbox, breast_on_right, clahe_fusion, resample, resampled_shape, to_uint8

# Bound on the pixels of a prepared image (the grid the network sees), checked before any pre-processing. Explaining
# costs memory per prepared pixel, reading per stored pixel (correlax.io.MAX_PIXELS): `correlax explain --masks 0`
# peaks at about 1 GB + 78 MB per prepared megapixel (benchmarks/memory.py), so 36 M keeps it under 4 GiB
# (docs/bad-input.md, Memory).
MAX_PREPARED_PIXELS = 36_000_000


@dataclass(frozen=True)
class PreprocessSettings(DictSettings):
    """How a mammogram becomes the network's 3-channel image; stored with every checkpoint."""

    clahe_fusion: bool = True  # False: the grey image repeated in 3 channels
    canonical_flip: bool = False  # mirror so that the chest wall is on the left
    target_spacing: float | None = None  # mm per pixel after resampling; None keeps the native grid


@dataclass(frozen=True)
class PreparedGeometry(DictSettings):
    """How the prepared pixel grid relates to the stored pixel grid of the source file, both ways.

    Pre-processing resizes the whole stored image to ``prepared_shape`` and then may mirror it left-right;
    MONOCHROME1 is an intensity inversion only and moves no pixel. Pixel ``i`` covers ``[i, i + 1)``, so
    a pixel index maps through its centre ``i + 0.5`` (the convention of ``cv2.resize``).
    """

    stored_shape: tuple[int, int]  # (rows, columns) of the source file's pixel data
    prepared_shape: tuple[int, int]  # (rows, columns) of the prepared image
    flipped: bool = False

    @classmethod
    def from_dict(cls, data: dict) -> PreparedGeometry:
        """Rebuild from :meth:`to_dict`'s output (JSON lists back to shape tuples)."""
        out = super().from_dict(data)
        return replace(out, stored_shape=tuple(out.stored_shape), prepared_shape=tuple(out.prepared_shape))

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y): prepared pixels per stored pixel."""
        return self.prepared_shape[1] / self.stored_shape[1], self.prepared_shape[0] / self.stored_shape[0]

    def box_to_prepared(self, box: AnnotationBox) -> AnnotationBox:
        """(xmin, ymin, xmax, ymax) pixel edges on the stored grid → pixel edges on the prepared grid."""
        sx, sy = self.scale
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = x0 * sx, x1 * sx
        if self.flipped:
            x0, x1 = self.prepared_shape[1] - x1, self.prepared_shape[1] - x0
        return x0, y0 * sy, x1, y1 * sy

    def points_to_stored(self, xy: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """(N, 2) pixel indices (x, y) on the prepared grid → (N, 2) float pixel indices on the stored grid.

        ``origin`` is the prepared-grid (x, y) of index (0, 0) when the points are relative to a crop
        (the breast box). Round the result for the stored pixel that holds the point.
        """
        sx, sy = self.scale
        centre = np.asarray(xy, dtype=np.float64).reshape(-1, 2) + np.add(origin, 0.5)
        if self.flipped:
            centre[:, 0] = self.prepared_shape[1] - centre[:, 0]
        return centre / (sx, sy) - 0.5

    def map_to_stored(self, values: np.ndarray, origin: tuple[int, int] = (0, 0), fill: float = 0.0) -> np.ndarray:
        """A (H', W') or (L, H', W') map on the prepared grid → the same on the stored grid (bilinear).

        A map smaller than the prepared image covers the crop that starts at ``origin`` (x, y); the
        rest of the image gets ``fill``.
        """
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 3:
            return np.stack([self.map_to_stored(v, origin, fill) for v in values])
        full = np.full(self.prepared_shape, fill, dtype=np.float32)
        x, y = origin
        if y + values.shape[0] > full.shape[0] or x + values.shape[1] > full.shape[1]:
            raise ValueError(f"a {values.shape} map at {origin} does not fit the prepared grid {self.prepared_shape}")
        full[y : y + values.shape[0], x : x + values.shape[1]] = values
        rows, cols = self.stored_shape
        return cv2.resize(self.orient_like_stored(full), (cols, rows), interpolation=cv2.INTER_LINEAR)

    def orient_like_stored(self, values: np.ndarray) -> np.ndarray:
        """A (..., H, W) prepared-grid array mirrored back when the canonical flip applied (same resolution)."""
        return np.ascontiguousarray(values[..., ::-1]) if self.flipped else np.asarray(values)


@dataclass(frozen=True)
class PreparedImage:
    """A mammogram ready for the network, and how its pixel grid relates to the stored image."""

    image: np.ndarray  # (H, W, 3) uint8, whole image (not cropped)
    breast_box: PixelBox  # x0, y0, x1, y1 (exclusive end) in prepared pixels
    scale: float  # prepared pixels per stored pixel along x (columns)
    flipped: bool  # mirrored left-right after resampling
    scale_y: float | None = None  # along y (rows) when it differs from ``scale``; None: same
    spacing: tuple[float, float] | None = None  # (row, column) mm of the prepared grid, when known
    stored_shape: tuple[int, int] | None = None  # (rows, columns) of the source; None: from the scale

    def tensor(self) -> torch.Tensor:
        """The image as the network takes it: (3, H, W) float in [0, 1]."""
        return torch.from_numpy(self.image).permute(2, 0, 1).float().div_(255)

    @property
    def geometry(self) -> PreparedGeometry:
        """The mapping between this grid and the stored grid (inverse: ``points_to_stored``, ``map_to_stored``)."""
        h, w = self.image.shape[:2]
        sy = self.scale if self.scale_y is None else self.scale_y
        stored = self.stored_shape or (round(h / sy), round(w / self.scale))
        return PreparedGeometry(stored_shape=tuple(stored), prepared_shape=(h, w), flipped=self.flipped)

    def map_box(self, box: AnnotationBox) -> AnnotationBox:
        """Map (xmin, ymin, xmax, ymax) from stored-image pixels to prepared-image pixels."""
        return self.geometry.box_to_prepared(box)

    def to_stored(self, x: int, y: int) -> tuple[int, int]:
        """The stored-image pixel (column, row) under the prepared pixel (x, y): the inverse of :meth:`map_box`
        for pixel centres (flip undone, then the resampling)."""
        column, row = self.geometry.points_to_stored([[x, y]])[0] + 0.5
        return int(column), int(row)


def prepare(
    mammogram: Mammogram, settings: PreprocessSettings | None = None, max_pixels: int = MAX_PREPARED_PIXELS
) -> PreparedImage:
    """8-bit conversion → optional resampling → optional flip → breast box → 3 channels.

    Resampling needs ``mammogram.spacing``; for files that do not state it (PNG, PGM), set it from
    the data set's record first (``dataclasses.replace(mammogram, spacing=record.spacing)``).
    Raises ValueError when ``target_spacing`` is set and the spacing is unknown, and ImageReadError (naming
    the file) when the prepared image would have more than ``max_pixels`` pixels (the memory bound).
    """
    settings = settings or PreprocessSettings()
    h, w = mammogram.shape
    scale = _resampling(mammogram, settings)
    rows, columns = resampled_shape((h, w), *scale) if scale else (h, w)
    if rows * columns > max_pixels:
        at = f" at {settings.target_spacing} mm" if scale else ""
        raise ImageReadError(
            mammogram.path,
            f"image too large: prepared{at} it has {columns} x {rows} = {rows * columns:,} pixels, above the limit of "
            f"{max_pixels:,} that bounds the memory of explaining it (see docs/bad-input.md, Memory)",
        )
    gray = to_uint8(mammogram.pixels)
    spacing = mammogram.spacing
    if scale:
        gray = resample(gray, *scale)
        spacing = (spacing[0] * h / gray.shape[0], spacing[1] * w / gray.shape[1])
    scale_x, scale_y = gray.shape[1] / w, gray.shape[0] / h
    flipped = settings.canonical_flip and breast_on_right(gray)
    if flipped:
        gray = np.ascontiguousarray(gray[:, ::-1])
    breast_box = breast_bbox(gray)  # before the 3 channels exist: its label image is the largest temporary
    image = clahe_fusion(gray) if settings.clahe_fusion else np.repeat(gray[:, :, None], 3, axis=2)
    return PreparedImage(
        image=image,
        breast_box=breast_box,
        scale=scale_x,
        flipped=flipped,
        scale_y=None if scale_y == scale_x else scale_y,
        spacing=spacing,
        stored_shape=(h, w),
    )


def _resampling(mammogram: Mammogram, settings: PreprocessSettings) -> tuple[float, float] | None:
    """(row, column) resize factors to the settings' pixel spacing; None: the native grid is kept."""
    if settings.target_spacing is None:
        return None
    if mammogram.spacing is None:
        cause = f"pixel spacing unknown, cannot resample to {settings.target_spacing} mm"
        raise ValueError(f"{mammogram.path}: {cause}")
    return mammogram.spacing[0] / settings.target_spacing, mammogram.spacing[1] / settings.target_spacing
