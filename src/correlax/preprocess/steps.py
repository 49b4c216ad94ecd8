"""Pure pre-processing steps on 2-D arrays (no file I/O).

Boxes are ``(x0, y0, x1, y1)`` with an exclusive end, in pixels of the array they were computed on.
"""

from __future__ import annotations

import cv2
import numpy as np

from correlax.geometry import PixelBox


_SLICE_PIXELS = 1 << 20  # pixels converted to float at a time by to_uint8


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """Min-max scale to float32 in [0, 1]; a constant image becomes all zeros."""
    arr = np.array(pixels, dtype=np.float32)  # the one float copy; scaled in place
    return _scale_in_place(arr, float(arr.min()), float(arr.max()))


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Min-max scale to uint8 (the explicit end of the 12/16-bit dynamic range), as ``to_unit_float`` × 255 rounded.

    The same float32 arithmetic without a float copy of the whole image: integers of up to 16 bits go through a
    table of their value range, other images are converted a slice of rows at a time.
    """
    arr = np.asarray(pixels)
    if not arr.size:
        return arr.astype(np.uint8)
    if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
        lo, hi = int(arr.min()), int(arr.max())
        table = _unit_to_uint8(to_unit_float(np.arange(lo, hi + 1)))
        return table[arr - lo if arr.dtype.kind == "u" else arr.astype(np.int32) - lo]
    lo, hi = float(np.float32(arr.min())), float(np.float32(arr.max()))  # as to_unit_float's, on the float32 copy
    out = np.empty(arr.shape, np.uint8)
    step = max(1, _SLICE_PIXELS * len(arr) // arr.size)
    for start in range(0, len(arr), step):
        part = np.array(arr[start : start + step], dtype=np.float32)
        out[start : start + step] = _unit_to_uint8(_scale_in_place(part, lo, hi))
    return out


def _scale_in_place(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float32 ``arr`` → (arr - lo) / (hi - lo), in place; all zeros when hi <= lo."""
    if hi <= lo:
        arr[...] = 0
        return arr
    arr -= lo
    arr /= hi - lo
    return arr


def _unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] → uint8, rounding to nearest (``unit`` is overwritten)."""
    unit *= 255.0
    np.round(unit, out=unit)
    return unit.astype(np.uint8)


def breast_mask(gray: np.ndarray) -> np.ndarray:
    """The breast: the largest connected component above an Otsu threshold, (H, W) bool (the project's one
    definition of breast tissue). All False when nothing lies above the threshold (e.g. a constant image)."""
    labels, largest, _ = _largest_component(gray)
    return np.zeros(labels.shape, bool) if largest is None else labels == largest


def breast_bbox(gray: np.ndarray) -> PixelBox:
    """Bounding box of :func:`breast_mask`; the whole image when the mask is empty."""
    labels, largest, stats = _largest_component(gray)
    if largest is None:
        h, w = labels.shape
        return 0, 0, w, h
    x, y, w, h = (int(v) for v in stats[largest, : cv2.CC_STAT_AREA])  # the component's own box, from OpenCV
    return x, y, x + w, y + h


def _largest_component(gray: np.ndarray) -> tuple[np.ndarray, int | None, np.ndarray]:
    """(labels, label of the largest component above Otsu's threshold or None, OpenCV's per-label stats)."""
    img = gray if gray.dtype == np.uint8 else to_uint8(gray)
    _, mask = cv2.threshold(img, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return labels, (1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else None), stats


def clahe_fusion(gray_uint8: np.ndarray, tiles: int = 8) -> np.ndarray:
    """(H, W, 3) uint8: [original, CLAHE clip 1.0, CLAHE clip 2.0]; background zeros stay zero."""
    if gray_uint8.dtype != np.uint8 or gray_uint8.ndim != 2:
        raise ValueError(f"clahe_fusion expects a 2-D uint8 image, got {gray_uint8.dtype} {gray_uint8.shape}")
    fused = np.empty((*gray_uint8.shape, 3), np.uint8)  # filled channel by channel: no stacked copies
    fused[..., 0] = gray_uint8
    for channel, clip in enumerate((1.0, 2.0), start=1):
        fused[..., channel] = cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(gray_uint8)
    fused[gray_uint8 == 0] = 0
    return fused


def breast_on_right(gray: np.ndarray) -> bool:
    """True when more of the image's brightness lies in the right half (chest wall on the right)."""
    half = gray.shape[1] // 2
    return float(gray[:, gray.shape[1] - half :].sum(dtype=np.float64)) > float(gray[:, :half].sum(dtype=np.float64))


def resampled_shape(shape: tuple[int, int], scale_y: float, scale_x: float) -> tuple[int, int]:
    """(rows, columns) that :func:`resample` makes of an image of ``shape``."""
    return max(1, round(shape[0] * scale_y)), max(1, round(shape[1] * scale_x))


def resample(gray: np.ndarray, scale_y: float, scale_x: float) -> np.ndarray:
    """Resize by the given factors (area averaging when shrinking, bilinear when enlarging)."""
    h, w = gray.shape
    rows, columns = resampled_shape((h, w), scale_y, scale_x)
    if (rows, columns) == (h, w):
        return gray
    shrink = rows * columns < w * h
    return cv2.resize(gray, (columns, rows), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
