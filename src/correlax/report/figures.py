"""Matplotlib figures of the report: the Pointing Game bar chart and the per-image panels (PNG bytes)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from correlax.evaluation.pointing_game import Point
from correlax.labels import DISPLAY_NAMES

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]

PANEL_PIXELS = 360  # longest side of each downsampled panel image
HIT, MISS, BOX = "#1fbf5f", "#ff3b3b", "#35d0ff"


@dataclass
class ImagePanel:
    """One image and one class: the true boxes, each method's map of that class and where it pointed.

    ``image`` is (H, W) or (H, W, 3), uint8 or float in [0, 1]; ``maps`` are (H, W) on its grid;
    ``points`` are the reference-protocol points (hit or miss) from the Pointing Game scorer.
    """

    image_id: str
    label: str
    image: np.ndarray
    boxes: Sequence[Box]
    maps: Mapping[str, np.ndarray]
    points: Mapping[str, Point] = field(default_factory=dict)
    breast_box: IntBox | None = None


def panels_for_image(
    image_id: str,
    image: np.ndarray,
    maps_by_method: Mapping[str, np.ndarray],
    labels: Sequence[str],
    boxes_by_label: Mapping[str, Sequence[Box]],
    points: Mapping[str, Mapping[str, Mapping[str, Point]]],
    breast_box: IntBox | None = None,
) -> list[ImagePanel]:
    """One panel per scored class of an image; ``points`` is what ``MultiMethodScorer.add`` returned."""
    scored = [lb for lb in labels if any(lb in per_label for per_label in points.values())]
    return [
        ImagePanel(
            image_id=image_id,
            label=label,
            image=image,
            boxes=list(boxes_by_label.get(label, [])),
            maps={m: maps[labels.index(label)] for m, maps in maps_by_method.items()},
            points={m: p[label]["reference"] for m, p in points.items() if label in p},
            breast_box=breast_box,
        )
        for label in scored
    ]


def label_order(labels) -> list[str]:
    """Labels in the vocabulary's order, unknown ones last."""
    known = list(DISPLAY_NAMES)
    return sorted(labels, key=lambda c: (known.index(c) if c in known else len(known), c))


def _png(fig: Figure) -> bytes:
    """PNG bytes of a figure (the object API: no pyplot state, no global backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _shrink(array: np.ndarray, box: IntBox) -> np.ndarray:
    x0, y0, x1, y1 = box
    crop = np.asarray(array[y0:y1, x0:x1], dtype=np.float32)
    scale = PANEL_PIXELS / max(crop.shape[:2])
    if scale >= 1:
        return crop
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)


def _grey(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[..., 0]
    return img / 255.0 if img.max() > 1.0 else img


def heat_rgba(heat: np.ndarray) -> np.ndarray:
    """RGBA of a map on its own scale: colour and opacity grow with the value, low values stay see-through."""
    lo, hi = float(heat.min()), float(heat.max())
    norm = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    rgba = colormaps["inferno"](norm)
    rgba[..., 3] = 0.85 * norm**0.6
    return rgba


def panel_png(panel: ImagePanel) -> bytes:
    """The image with its true boxes, then one overlay per method with the pointed location."""
    h, w = panel.image.shape[:2]
    box = panel.breast_box or (0, 0, w, h)
    x0, y0, x1, y1 = box
    extent = (x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5)  # keep image pixel coordinates on the axes
    grey = _shrink(_grey(panel.image), box)
    methods = list(panel.maps)
    aspect = (y1 - y0) / (x1 - x0)
    cols = 1 + len(methods)
    fig = Figure(figsize=(2.3 * cols, 2.3 * aspect + 0.45))
    axes = fig.subplots(1, cols, squeeze=False)
    for ax in axes[0]:
        ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="bilinear")
        for bx0, by0, bx1, by1 in panel.boxes:
            ax.add_patch(Rectangle((bx0, by0), bx1 - bx0, by1 - by0, fill=False, ec=BOX, lw=1.2))
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image + true boxes", fontsize=8)
    for ax, method in zip(axes[0, 1:], methods):
        ax.imshow(heat_rgba(_shrink(panel.maps[method], box)), extent=extent, interpolation="bilinear")
        point = panel.points.get(method)
        title = method
        if point is not None:
            colour = HIT if point.hit else MISS
            ax.plot(point.x, point.y, marker="o", ms=9, mfc="none", mec=colour, mew=2.2)
            ax.plot(point.x, point.y, marker="+", ms=9, color=colour, mew=1.5)
            title = f"{method}\n{'hit' if point.hit else 'miss'} · max {point.value:.2g}"
        ax.set_title(title, fontsize=8)
    return _png(fig)


def pointing_chart_png(pointing: Mapping[str, dict]) -> bytes:
    """Grouped bars: per-class accuracy with Wilson 95% intervals, one subplot per protocol."""
    methods = list(pointing)
    fig = Figure(figsize=(11, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    colours = colormaps["tab10"].colors
    for ax, protocol in zip(axes, ("reference", "standard")):
        classes = label_order({c for m in methods for c in pointing[m][protocol]["per_class"]})
        groups = [DISPLAY_NAMES.get(c, c) for c in classes] + ["class mean"]
        width = 0.8 / max(1, len(methods))
        for i, method in enumerate(methods):
            block = pointing[method][protocol]
            acc = [block["per_class"].get(c, {}).get("acc", np.nan) for c in classes]
            lo = [block["per_class"].get(c, {}).get("ci95", [np.nan, np.nan])[0] for c in classes]
            hi = [block["per_class"].get(c, {}).get("ci95", [np.nan, np.nan])[1] for c in classes]
            mean = block.get("class_mean")
            acc.append(np.nan if mean is None else mean)
            lo.append(np.nan)
            hi.append(np.nan)
            acc_a, lo_a, hi_a = (np.array(v, dtype=float) for v in (acc, lo, hi))
            err = np.clip(np.vstack([acc_a - lo_a, hi_a - acc_a]), 0, None)
            xs = np.arange(len(groups)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(xs, acc_a, width, color=colours[i % len(colours)], label=method, yerr=err, capsize=2,
                   error_kw={"elinewidth": 0.8, "ecolor": "#444"})
        ax.set_xticks(np.arange(len(groups)), groups, fontsize=8, rotation=15)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{protocol} protocol", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel("Pointing Game accuracy")
    axes[1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)
