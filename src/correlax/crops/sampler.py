"""Multi-scale crops ("local views") around annotated findings, and "No Finding" crops.

Pure functions on boxes and arrays; every random draw comes from the ``numpy.random.Generator``
passed in, so a seed fixes the whole plan (docs/method.md §9).

Boxes are ``(x0, y0, x1, y1)`` floats in pixels of the prepared image, end exclusive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from correlax.geometry import AnnotationBox



@dataclass(frozen=True)
class CropSettings:
    """How crops are drawn around boxes and on normal tissue (the paper's multi-scale protocol by default)."""
    area_range: tuple[float, float] = (0.05, 5.0)  # crop area / box area
    aspect_range: tuple[float, float] = (0.33, 1.66)  # crop width / height
    crops_per_box: int = 4
    crops_per_normal_image: int = 4
    normal_side_range: tuple[float, float] = (64.0, 512.0)  # side of a square No Finding crop, prepared px
    min_cover: float = 0.5  # a box counts for a crop when this fraction of it lies inside (or its centre does)
    # "window": every crop a square near this side (prepared px; the explained window), its side drawn log-uniformly
    # within a factor ``window_jitter`` either way, for box and No Finding crops alike, so the classifier learns
    # at the scale it is explained at. None: the paper's box-relative multi-scale crops above.
    window_side: float | None = None
    window_jitter: float = 1.25
    # No Finding crops also from the tissue of images with boxes, away from every box: the rest of a lesion's own
    # film, which the explanation's argmax must rank below the lesion. 0: only images without findings (the paper).
    normal_crops_per_boxed_image: int = 0
    # No Finding crops centred on the skin line (the breast mask's edge), away from every box, from every image with
    # boxes or without findings: hard negatives for windows that straddle the breast's edge (issue 25). 0: none.
    skin_crops_per_image: int = 0


@dataclass(frozen=True)
class Crop:
    """A crop to cut: its box in prepared-image pixels and the labels it carries."""
    box: AnnotationBox
    labels: tuple[str, ...]


def box_area(b: AnnotationBox) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersection_area(a: AnnotationBox, b: AnnotationBox) -> float:
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def contains_point(b: AnnotationBox, x: float, y: float) -> bool:
    return b[0] <= x < b[2] and b[1] <= y < b[3]


def box_center(b: AnnotationBox) -> tuple[float, float]:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def crop_labels(crop: AnnotationBox, findings: list[tuple[str, AnnotationBox]], min_cover: float = 0.5) -> tuple[str, ...]:
    """Every label with a box that the crop covers by ``min_cover`` of the box's area, or whose centre it holds."""
    found = set()
    for label, b in findings:
        area = box_area(b)
        if contains_point(crop, *box_center(b)) or (area > 0 and intersection_area(crop, b) / area >= min_cover):
            found.add(label)
    return tuple(sorted(found))


def window_sides(settings: CropSettings) -> tuple[float, float]:
    """The range of crop sides of window-scale crops."""
    return settings.window_side / settings.window_jitter, settings.window_side * settings.window_jitter


def sample_box_crops(box: AnnotationBox, n: int, rng: np.random.Generator, settings: CropSettings = CropSettings()) -> list[AnnotationBox]:
    """``n`` crops, each holding the box's centre: log-uniform in area ratio and aspect ratio, or squares of
    window scale (``settings.window_side``)."""
    cx, cy = box_center(box)
    area = max(box_area(box), 1.0)
    lo_a, hi_a = np.log(settings.area_range)
    lo_r, hi_r = np.log(settings.aspect_range)
    lo_s, hi_s = np.log(window_sides(settings)) if settings.window_side is not None else (0.0, 0.0)
    crops = []
    for _ in range(n):
        if settings.window_side is None:
            a = area * math.exp(rng.uniform(lo_a, hi_a))
            r = math.exp(rng.uniform(lo_r, hi_r))
            w, h = math.sqrt(a * r), math.sqrt(a / r)
        else:
            w = h = math.exp(rng.uniform(lo_s, hi_s))
        # the centre lies at a uniform relative position inside the crop (kept off the very edge)
        x0 = cx - w * rng.uniform(0.1, 0.9)
        y0 = cy - h * rng.uniform(0.1, 0.9)
        crops.append((x0, y0, x0 + w, y0 + h))
    return crops


def skin_line(tissue: np.ndarray) -> np.ndarray:
    """(H, W) bool: breast pixels with a non-breast 4-neighbour (the image's border counts as outside the breast,
    as for the explained windows, which are padded there)."""
    padded = np.pad(tissue.astype(bool), 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return tissue.astype(bool) & ~inner


def sample_normal_crops(
    tissue: np.ndarray,
    n: int,
    rng: np.random.Generator,
    settings: CropSettings = CropSettings(),
    avoid: list[AnnotationBox] = (),
    max_tries: int = 50,
) -> list[AnnotationBox]:
    """Square crops centred on pixels of ``tissue`` (a boolean (H, W) mask: the breast, or its :func:`skin_line`)
    that overlap no box in ``avoid``.

    Returns fewer than ``n`` crops when the tissue is too small or too crowded to place them.
    """
    ys, xs = np.nonzero(tissue)
    if len(xs) == 0:
        return []
    lo, hi = np.log(settings.normal_side_range if settings.window_side is None else window_sides(settings))
    crops: list[AnnotationBox] = []
    for _ in range(n * max_tries):
        if len(crops) == n:
            break
        i = rng.integers(len(xs))
        side = math.exp(rng.uniform(lo, hi))
        x0, y0 = xs[i] + 0.5 - side / 2, ys[i] + 0.5 - side / 2
        crop = (x0, y0, x0 + side, y0 + side)
        if all(intersection_area(crop, b) == 0 for b in avoid):
            crops.append(crop)
    return crops


def plan_crops(
    findings: list[tuple[str, AnnotationBox]],
    tissue: np.ndarray | None,
    rng: np.random.Generator,
    settings: CropSettings = CropSettings(),
    normal_label: str = "no_finding",
) -> list[Crop]:
    """All crops of one image: crops around each box (and ``settings.normal_crops_per_boxed_image`` No Finding
    crops away from the boxes), or No Finding crops when it has no boxes; then ``settings.skin_crops_per_image``
    No Finding crops on the skin line, away from the boxes.

    ``tissue`` is only used for No Finding crops; without it an image gives none.
    """
    if findings:
        crops = [
            Crop(c, crop_labels(c, findings, settings.min_cover))
            for _, b in findings
            for c in sample_box_crops(b, settings.crops_per_box, rng, settings)
        ]
        n_normal, avoid = settings.normal_crops_per_boxed_image, [b for _, b in findings]
    else:
        crops, n_normal, avoid = [], settings.crops_per_normal_image, []
    if tissue is None:
        return crops
    normal = sample_normal_crops(tissue, n_normal, rng, settings, avoid) if n_normal else []
    n_skin = settings.skin_crops_per_image
    skin = sample_normal_crops(skin_line(tissue), n_skin, rng, settings, avoid) if n_skin else []
    return crops + [Crop(c, (normal_label,)) for c in normal + skin]


def extract_crop(image: np.ndarray, box: AnnotationBox, size: int) -> np.ndarray:
    """Cut ``box`` out of an (H, W, C) image, zero outside the image, resized to (size, size, C)."""
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = max(int(math.ceil(box[2])), x0 + 1), max(int(math.ceil(box[3])), y0 + 1)
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    shrinking = out.shape[0] * out.shape[1] > size * size
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
