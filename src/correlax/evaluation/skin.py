"""Where on the breast a map points: the distance from a point to the skin line (issue 25's confound check).

A map that points at the breast's edge more often than the lesions lie there is driven by the edge, not by the
lesions; comparing the distribution of peak distances with that of the boxes' centres says so in millimetres.
"""

from __future__ import annotations

import cv2
import numpy as np

TISSUE_OF_MAX = 0.1  # a pixel is breast when its grey value is above this fraction of the image's maximum


def tissue_of(grey: np.ndarray, fraction: float = TISSUE_OF_MAX) -> np.ndarray:
    """(H, W) bool: pixels above ``fraction`` of the image's maximum grey value."""
    return grey > fraction * float(grey.max())


def skin_distance_map(tissue: np.ndarray) -> np.ndarray:
    """(H, W) float32: each breast pixel's Euclidean distance in pixels to the nearest non-breast pixel (the
    image's border counts as outside the breast: a breast cut by the border has its edge there); 0 outside."""
    padded = np.pad(tissue.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def distance_to_skin_mm(distances: np.ndarray, x: float, y: float, spacing_mm: float) -> float:
    """The skin distance (mm) at the pixel holding point (x, y) of a :func:`skin_distance_map`; 0 outside the breast."""
    h, w = distances.shape
    col, row = min(max(int(x), 0), w - 1), min(max(int(y), 0), h - 1)
    return float(distances[row, col]) * spacing_mm


def peak_of(heatmap: np.ndarray) -> tuple[float, float]:
    """(x, y) pixel centre of the map's maximum (the Pointing Game's point)."""
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return col + 0.5, row + 0.5


def distance_summary(values_mm) -> dict:
    """Median, quartiles and how many lie within 5 mm of the skin line, of distances in mm ({"n": 0} when none)."""
    v = np.asarray(values_mm, float)
    if len(v) == 0:
        return {"n": 0}
    return {"n": len(v), "median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
            "q75": float(np.quantile(v, 0.75)), "within_5mm": int((v < 5).sum())}  # fmt: skip


def distance_table(boxes_mm, peaks_mm) -> dict:
    """{"boxes": summary, <map>: summary, ...}: :func:`distance_summary` of the boxes' centres (a flat sequence of
    mm) and of each map's peaks (``peaks_mm``: one {map: mm} per scored (film, class) pair)."""
    maps = list(peaks_mm[0]) if peaks_mm else []
    return {"boxes": distance_summary(boxes_mm), **{m: distance_summary([p[m] for p in peaks_mm]) for m in maps}}
