"""A zoomable, offline viewer page (OpenSeadragon, vendored): full-resolution mammograms with toggled map overlays.

The page and its files work from ``file://`` without a server: the image list is inline in the page, each
image is a PNG beside it (``viewer/<n>/``) that is fetched only when the image is selected, and the overlays
of an image only when they are switched on. Markers: the true boxes and the peak of each shown map.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np

from correlax.geometry import AnnotationBox
from correlax.fileio import atomic_write_bytes, atomic_write_text
from correlax.preprocess import to_uint8
from correlax.report.figures import heat_rgba

OVERLAY_PIXELS = 1024  # longest side of an overlay PNG; the viewer stretches it over the image
METHOD_COLORS = {"correlax-prediction": "#ffd43b", "correlax-correlation": "#ff6b6b", "correlax-weighted": "#ff922b",
                 "relax": "#b197fc", "rise": "#63e6be", "gradcam": "#74c0fc", "occlusion": "#ffa94d", "center": "#ced4da",
                 "random": "#f783ac"}  # fmt: skip
ASSETS = ("openseadragon.min.js", "openseadragon-LICENSE.txt", "viewer.js")

CSS = """
* { box-sizing: border-box; }
html, body { margin:0; height:100%; background:#0f1420; color:#e8ecf4;
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; }
body { display:flex; }
aside { width:360px; flex:none; padding:14px 16px; overflow:auto; background:#161d2d; border-right:1px solid #28324a; }
aside h1 { font-size:17px; margin:0 0 10px; }
aside h2 { font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:#9aa6bf; margin:16px 0 6px; }
select, button { font:inherit; }
select { width:100%; }
#osd { flex:1; height:100%; background:#000; }
table { border-collapse:collapse; font-size:11px; }
th, td { padding:3px 5px; text-align:center; }
th:first-child { text-align:left; font-weight:500; white-space:nowrap; }
.swatch { display:inline-block; width:9px; height:9px; border-radius:50%; margin-right:5px; }
.box { border:2px solid #35d0ff; pointer-events:none; }
.peak { width:16px; height:16px; border:3px solid #ffd43b; border-radius:50%; box-shadow:0 0 0 1px #000; }
p.note { color:#9aa6bf; font-size:12px; }
"""


@dataclass
class ViewerImage:
    """One mammogram for the viewer; every coordinate is in pixels of ``grey``.

    ``overlays`` are {method: {label: map}}; a map of another size than ``grey`` covers the whole image
    (it is stretched). ``peaks`` are {method: {label: (x, y) or (x, y, value)}} pixel indices; ``boxes``
    {label: [(x0, y0, x1, y1)]} pixel edges.
    """

    image_id: str
    grey: np.ndarray
    overlays: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    peaks: Mapping[str, Mapping[str, Sequence[float]]] = field(default_factory=dict)
    boxes: Mapping[str, Sequence[AnnotationBox]] = field(default_factory=dict)

    @classmethod
    def from_maps(
        cls,
        image_id: str,
        grey: np.ndarray,
        maps_by_method: Mapping[str, np.ndarray],
        labels: Sequence[str],
        boxes: Mapping[str, Sequence[AnnotationBox]] | None = None,
        peaks: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
    ) -> ViewerImage:
        """From (L, H, W) maps per method (as the explainers return them) on the grid of ``grey``."""
        overlays = {m: {label: maps[c] for c, label in enumerate(labels)} for m, maps in maps_by_method.items()}
        return cls(image_id, grey, overlays, dict(peaks or {}), dict(boxes or {}))


def reference_peaks(points: Mapping[str, Mapping[str, Mapping]]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """The Pointing Game's reference points (``MultiMethodScorer.add``'s return) as viewer peaks."""
    return {
        method: {label: (p["reference"].x, p["reference"].y, p["reference"].value) for label, p in per_label.items()}
        for method, per_label in points.items()
    }


def heat_png(values: np.ndarray) -> bytes:
    """The map in the report's colours (its own scale, low values see-through), at most ``OVERLAY_PIXELS``."""
    values = np.asarray(values, dtype=np.float32)
    scale = OVERLAY_PIXELS / max(values.shape)
    if scale < 1:
        size = (max(1, round(values.shape[1] * scale)), max(1, round(values.shape[0] * scale)))
        values = cv2.resize(values, size, interpolation=cv2.INTER_AREA)
    rgba = np.round(heat_rgba(values) * 255).astype(np.uint8)
    return _png(cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise ValueError(f"cannot encode a {array.shape} {array.dtype} array as PNG")
    return data.tobytes()


class ViewerWriter:
    """Writes ``out_dir/<page>`` and its files image by image (``add``), then the page (``finish``)."""

    def __init__(self, out_dir: str | Path, page: str = "index.html", title: str = "CorRELAX viewer"):
        self.out_dir, self.page, self.title = Path(out_dir), page, title
        self.asset_dir = self.out_dir / "viewer"
        self.entries: list[dict] = []

    def add(self, image: ViewerImage) -> None:
        """Write the image and its overlays as PNGs now; the page lists them when finished."""
        n = len(self.entries)
        folder = self.asset_dir / f"{n:04d}"
        rel = f"viewer/{n:04d}"
        grey = image.grey if image.grey.dtype == np.uint8 else to_uint8(image.grey)
        atomic_write_bytes(folder / "image.png", _png(grey))
        overlays = []
        for method, per_label in image.overlays.items():
            for label, values in per_label.items():
                name = f"{len(overlays):03d}.png"
                atomic_write_bytes(folder / name, heat_png(values))
                rng = [float(np.min(values)), float(np.max(values))]
                overlays.append({"method": method, "label": label, "url": f"{rel}/{name}", "range": rng})
        peaks = [
            {"method": m, "label": label, "x": float(p[0]), "y": float(p[1]), "value": float(p[2]) if len(p) > 2 else None}
            for m, per_label in image.peaks.items() for label, p in per_label.items()
        ]  # fmt: skip
        boxes = {label: [[float(v) for v in b] for b in bs] for label, bs in image.boxes.items()}
        h, w = grey.shape[:2]
        self.entries.append({"id": image.image_id, "width": w, "height": h, "image": f"{rel}/image.png",
                             "overlays": overlays, "peaks": peaks, "boxes": boxes})  # fmt: skip

    def finish(self) -> Path:
        """Copy the scripts beside the page and write the page; return its path."""
        static = files("correlax.report") / "static"
        for name in ASSETS:
            atomic_write_bytes(self.asset_dir / name, (static / name).read_bytes())
        data = {"title": self.title, "colors": METHOD_COLORS, "images": self.entries}
        inline = json.dumps(data).replace("</", "<\\/")
        title = escape(self.title)
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
            f"<aside><h1>{title}</h1><h2>Image</h2><select id=\"image\"></select>"
            '<p class="note" id="caption"></p><h2>Maps (method × class)</h2><table id="layers"></table>'
            '<h2>Display</h2><label>opacity <input id="opacity" type="range" min="0" max="1" step="0.05"></label><br>'
            '<label><input id="boxes" type="checkbox"> true boxes</label> '
            '<label><input id="peaks" type="checkbox"> peaks of the maps shown</label>'
            '<h2>Zoom</h2><button id="zoom-in">+</button> <button id="zoom-out">−</button> '
            '<button id="zoom-fit">fit</button><p class="note">Scroll to zoom, drag to pan. Each map on its own '
            "colour scale (low values see-through); hover a marker for its value. OpenSeadragon, BSD-3 licence "
            '(viewer/openseadragon-LICENSE.txt).</p></aside><div id="osd"></div>'
            f"<script>window.CORRELAX_VIEWER = {inline};</script>"
            '<script src="viewer/openseadragon.min.js"></script><script src="viewer/viewer.js"></script>'
            "</body></html>\n"
        )
        path = self.out_dir / self.page
        atomic_write_text(path, page)
        return path


def write_viewer(
    out_dir: str | Path, images: Iterable[ViewerImage], page: str = "index.html", title: str = "CorRELAX viewer"
) -> Path:
    """Write the viewer page for ``images`` (an iterable: each is written and dropped before the next)."""
    writer = ViewerWriter(out_dir, page, title)
    for image in images:
        writer.add(image)
    return writer.finish()
