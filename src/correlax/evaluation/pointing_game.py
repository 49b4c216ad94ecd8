"""Pointing Game, in the two protocols of docs/method.md §7, as pure functions plus a streaming scorer.

Conventions. Maps are (L, H, W) arrays on the image's pixel grid with a label list in the same order.
A point is a pixel index (x = column, y = row). Boxes are (xmin, ymin, xmax, ymax) in the same pixels,
treated as closed rectangles: a pixel lies in a box when xmin <= x <= xmax and ymin <= y <= ymax.
The breast box (crop) is (x0, y0, x1, y1) with exclusive end, as ``correlax.preprocess`` gives it.

- Reference protocol (the paper's numbers): argmax of the class map inside the crop; a hit when the
  point lies in some class box enlarged by ``margin_px`` (the stride S) on every side, clipped to the
  crop, and the map's maximum is above ``threshold`` (None: no threshold). Per class: hits / images
  containing the class; "average" = total hits / number of images; "class_mean" = mean over classes.
- Standard protocol (Zhang et al.): argmax of the whole map; a hit when the point is within the
  tolerance (Euclidean, px or mm) of a ground-truth pixel of the class; no threshold;
  accuracy = mean over classes of hits / (hits + misses).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from correlax.labels import NO_FINDING

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]

Z95 = 1.959963984540054  # two-sided 95% normal quantile
MARGIN_PX = 32  # the reference enlarges boxes by the window stride S
TOLERANCE_PX = 15.0  # Zhang et al.'s tolerance
# The reference thresholds belong to CorRELAX's maps; every other method is scored without one.
REFERENCE_THRESHOLDS: dict[str, float] = {"correlax-prediction": 0.25, "correlax-correlation": 0.1}


def default_threshold(method: str) -> float | None:
    """The reference-protocol threshold of a method: 0.25 / 0.1 for CorRELAX maps, else None."""
    return REFERENCE_THRESHOLDS.get(method)


@dataclass(frozen=True)
class Point:
    """Where one map points for one class, and whether that counts as a hit."""

    x: int
    y: int
    value: float
    hit: bool


def wilson_interval(hits: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when n == 0."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always holds p; the min/max only absorb rounding (at p = 0 or 1 the bound equals p).
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def peak_in_box(heatmap: np.ndarray, box: IntBox) -> tuple[int, int, float]:
    """(x, y, value) of the maximum of an (H, W) map inside ``box`` (exclusive end), in image pixels."""
    x0, y0, x1, y1 = box
    region = heatmap[y0:y1, x0:x1]
    cx, cy = _argmax(region)
    return cx + x0, cy + y0, float(region[cy, cx])


def _argmax(values: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    return int(x), int(y)


def point_reference(
    heatmap: np.ndarray,
    boxes: Sequence[Box],
    crop: IntBox | None = None,
    margin_px: float = MARGIN_PX,
    threshold: float | None = None,
) -> Point:
    """Reference protocol for one (H, W) map and the boxes of one class."""
    h, w = heatmap.shape
    x0, y0, x1, y1 = crop if crop is not None else (0, 0, w, h)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"breast box {crop} is empty or outside the {w}x{h} map")
    x, y, value = peak_in_box(heatmap, (x0, y0, x1, y1))
    inside = False
    for bx0, by0, bx1, by1 in boxes:
        ex0, ey0 = max(bx0 - margin_px, x0), max(by0 - margin_px, y0)
        ex1, ey1 = min(bx1 + margin_px, x1 - 1), min(by1 + margin_px, y1 - 1)
        inside |= ex0 <= x <= ex1 and ey0 <= y <= ey1
    above = threshold is None or value > threshold
    return Point(x, y, value, bool(inside and above))


def box_distance(x: float, y: float, box: Box, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Euclidean distance from a point to a closed box; ``spacing`` = (row, col) units per pixel."""
    bx0, by0, bx1, by1 = box
    dx = max(bx0 - x, 0.0, x - bx1) * spacing[1]
    dy = max(by0 - y, 0.0, y - by1) * spacing[0]
    return math.hypot(dx, dy)


def point_standard(
    heatmap: np.ndarray,
    boxes: Sequence[Box],
    tolerance: float = TOLERANCE_PX,
    spacing: tuple[float, float] = (1.0, 1.0),
) -> Point:
    """Standard protocol for one (H, W) map; ``tolerance`` is in the units of ``spacing`` (px by default).

    Boxes are clipped to the map first, so the nearest ground-truth pixel is a pixel of the image.
    """
    h, w = heatmap.shape
    x, y = _argmax(heatmap)
    clipped = [_clip_box(b, w, h) for b in boxes]
    hit = any(b is not None and box_distance(x, y, b, spacing) <= tolerance for b in clipped)
    return Point(x, y, float(heatmap[y, x]), hit)


def _clip_box(box: Box, w: int, h: int) -> Box | None:
    bx0, by0, bx1, by1 = box
    bx0, by0, bx1, by1 = max(bx0, 0.0), max(by0, 0.0), min(bx1, w - 1.0), min(by1, h - 1.0)
    return (bx0, by0, bx1, by1) if bx0 <= bx1 and by0 <= by1 else None


def _per_class(hits: Mapping[str, int], counts: Mapping[str, int], labels: Sequence[str]) -> dict:
    out = {}
    for label in labels:
        n = counts.get(label, 0)
        if n:
            lo, hi = wilson_interval(hits[label], n)
            out[label] = {"hits": hits[label], "n": n, "acc": hits[label] / n, "ci95": [lo, hi]}
    return out


class PointingGameScorer:
    """Streams images of one method through both protocols.

    ``add`` scores one image and returns its points ({label: {"reference": Point, "standard": Point}}),
    for panels; ``result`` gives the metrics.json block of the method. Labels carrying no box in an image,
    and ``no_finding``, are not scored; an image counts when at least one of its classes is scored.
    Box labels the model does not know are counted under ``"unscored_boxes"``.
    """

    def __init__(
        self,
        labels: Sequence[str],
        threshold: float | None = None,
        margin_px: float = MARGIN_PX,
        tolerance_px: float | None = TOLERANCE_PX,
        tolerance_mm: float | None = None,
    ) -> None:
        if (tolerance_px is None) == (tolerance_mm is None):
            raise ValueError("give exactly one of tolerance_px and tolerance_mm")
        self.labels = tuple(labels)
        self.threshold = threshold
        self.margin_px = margin_px
        self.tolerance_px = tolerance_px
        self.tolerance_mm = tolerance_mm
        self.n_images = 0
        self.counts = dict.fromkeys(self.labels, 0)
        self.ref_hits = dict.fromkeys(self.labels, 0)
        self.std_hits = dict.fromkeys(self.labels, 0)
        self.unscored: dict[str, int] = {}

    def add(
        self,
        maps: np.ndarray,
        boxes_by_label: Mapping[str, Sequence[Box]],
        breast_box: IntBox | None = None,
        spacing: tuple[float, float] | None = None,
    ) -> dict[str, dict[str, Point]]:
        """Score one image: ``maps`` (L, H, W) in this scorer's label order, boxes in the same pixels,
        ``spacing`` (row, col) in mm per pixel of the maps (needed only with ``tolerance_mm``)."""
        maps = np.asarray(maps)
        if maps.ndim != 3 or maps.shape[0] != len(self.labels):
            raise ValueError(f"maps have shape {maps.shape}; expected ({len(self.labels)}, H, W)")
        if self.tolerance_mm is not None and spacing is None:
            raise ValueError("a tolerance in mm needs the image's pixel spacing")
        tolerance, units = (
            (self.tolerance_px, (1.0, 1.0)) if self.tolerance_mm is None else (self.tolerance_mm, spacing)
        )
        points: dict[str, dict[str, Point]] = {}
        for label, boxes in boxes_by_label.items():
            if label == NO_FINDING or not boxes:
                continue
            if label not in self.counts:
                self.unscored[label] = self.unscored.get(label, 0) + 1
                continue
            heatmap = maps[self.labels.index(label)]
            ref = point_reference(heatmap, boxes, breast_box, self.margin_px, self.threshold)
            std = point_standard(heatmap, boxes, tolerance, units)
            self.counts[label] += 1
            self.ref_hits[label] += ref.hit
            self.std_hits[label] += std.hit
            points[label] = {"reference": ref, "standard": std}
        self.n_images += bool(points)
        return points

    def result(self) -> dict:
        ref = _per_class(self.ref_hits, self.counts, self.labels)
        std = _per_class(self.std_hits, self.counts, self.labels)
        out = {
            "n_images": self.n_images,
            "reference": {
                "per_class": ref,
                "average": sum(self.ref_hits.values()) / self.n_images if self.n_images else None,
                "class_mean": _mean(v["acc"] for v in ref.values()),
                "threshold": self.threshold,
                "margin_px": self.margin_px,
            },
            "standard": {
                "per_class": std,
                "class_mean": _mean(v["acc"] for v in std.values()),
                "tolerance_px": self.tolerance_px,
                "tolerance_mm": self.tolerance_mm,
            },
        }
        if self.unscored:
            out["unscored_boxes"] = dict(self.unscored)
        return out


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


class MultiMethodScorer:
    """One :class:`PointingGameScorer` per method, fed the dict an ``Explainer.attribute`` returns.

    Each method gets its reference threshold from ``thresholds`` (default: :func:`default_threshold`).
    """

    def __init__(
        self,
        labels: Sequence[str],
        thresholds: Mapping[str, float | None] | None = None,
        **scorer_kwargs,
    ) -> None:
        self.labels = tuple(labels)
        self.thresholds = dict(thresholds) if thresholds is not None else None
        self.scorer_kwargs = scorer_kwargs
        self.scorers: dict[str, PointingGameScorer] = {}

    def _scorer(self, method: str) -> PointingGameScorer:
        if method not in self.scorers:
            if self.thresholds is None:
                threshold = default_threshold(method)
            else:
                threshold = self.thresholds.get(method)
            self.scorers[method] = PointingGameScorer(self.labels, threshold, **self.scorer_kwargs)
        return self.scorers[method]

    def add(
        self,
        maps_by_method: Mapping[str, np.ndarray],
        boxes_by_label: Mapping[str, Sequence[Box]],
        breast_box: IntBox | None = None,
        spacing: tuple[float, float] | None = None,
    ) -> dict[str, dict[str, dict[str, Point]]]:
        """Score one image under every method; returns {method: {label: {protocol: Point}}}."""
        return {
            method: self._scorer(method).add(maps, boxes_by_label, breast_box, spacing)
            for method, maps in maps_by_method.items()
        }

    def result(self) -> dict:
        return {method: scorer.result() for method, scorer in self.scorers.items()}


def format_pointing_game(pointing: dict) -> str:
    """One line per method: reference average and class mean, standard class mean, per-class reference accuracy."""
    lines = [f"{'method':<22}{'ref. average':>13}{'ref. class mean':>16}{'std. class mean':>16}   per class (reference)"]
    for method, block in pointing.items():
        ref, std = block["reference"], block["standard"]
        per = ", ".join(f"{c} {v['hits']}/{v['n']}" for c, v in ref["per_class"].items() if v["n"])
        lines.append(
            f"{method:<22}{_num(ref['average']):>13}{_num(ref['class_mean']):>16}{_num(std['class_mean']):>16}   {per}"
        )
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"
