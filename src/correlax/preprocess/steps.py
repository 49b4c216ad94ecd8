"""Pure pre-processing steps on 2-D arrays (no file I/O).

Boxes are ``(x0, y0, x1, y1)`` with an exclusive end, in pixels of the array they were computed on.
"""

from __future__ import annotations

import cv2
import numpy as np

from correlax.geometry import PixelBox


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """Min-max scale to float32 in [0, 1]; a constant image becomes all zeros."""
    arr = np.asarray(pixels, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr)
    return (arr - lo) / (hi - lo)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Min-max scale to uint8 (the explicit end of the 12/16-bit dynamic range)."""
    return np.round(to_unit_float(pixels) * 255.0).astype(np.uint8)


def breast_mask(gray: np.ndarray) -> np.ndarray:
    """The breast: the largest connected component above an Otsu threshold, (H, W) bool (the project's one
    definition of breast tissue). All False when nothing lies above the threshold (e.g. a constant image)."""
    img = gray if gray.dtype == np.uint8 else to_uint8(gray)
    _, mask = cv2.threshold(img, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        return np.zeros(img.shape, bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def breast_bbox(gray: np.ndarray) -> PixelBox:
    """Bounding box of :func:`breast_mask`; the whole image when the mask is empty."""
    mask = breast_mask(gray)
    if not mask.any():
        h, w = mask.shape
        return 0, 0, w, h
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def clahe_fusion(gray_uint8: np.ndarray, tiles: int = 8) -> np.ndarray:
    """(H, W, 3) uint8: [original, CLAHE clip 1.0, CLAHE clip 2.0]; background zeros stay zero."""
    if gray_uint8.dtype != np.uint8 or gray_uint8.ndim != 2:
        raise ValueError(f"clahe_fusion expects a 2-D uint8 image, got {gray_uint8.dtype} {gray_uint8.shape}")
    channels = [gray_uint8] + [
        cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(gray_uint8) for clip in (1.0, 2.0)
    ]
    fused = np.stack(channels, axis=-1)
    fused[gray_uint8 == 0] = 0
    return fused


def breast_on_right(gray: np.ndarray) -> bool:
    """True when more of the image's brightness lies in the right half (chest wall on the right)."""
    arr = np.asarray(gray, dtype=np.float64)
    half = arr.shape[1] // 2
    return float(arr[:, arr.shape[1] - half :].sum()) > float(arr[:, :half].sum())


def resample(gray: np.ndarray, scale_y: float, scale_x: float) -> np.ndarray:
    """Resize by the given factors (area averaging when shrinking, bilinear when enlarging)."""
    h, w = gray.shape
    size = (max(1, round(w * scale_x)), max(1, round(h * scale_y)))
    if size == (w, h):
        return gray
    shrink = size[0] * size[1] < w * h
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
