"""A zoomable, offline viewer page (OpenSeadragon, vendored): full-resolution mammograms with toggled map overlays.

The page and its files work from ``file://`` without a server: the image list is a JSON block in the page,
each image and overlay a Deep Zoom pyramid beside it (``viewer/<n>/<name>.dzi`` + ``<name>_files/``) whose
tiles are fetched only for the image selected, the overlays switched on and the region and scale on screen.
Markers: the true boxes and the peak of each shown map. The data reaches the page as text only (a JSON
block, read with ``textContent``; the script builds the page with ``textContent`` and DOM properties) and a
Content-Security-Policy lets no inline script run, so a hostile label or file name is shown, not executed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from correlax.geometry import AnnotationBox
from correlax.fileio import atomic_write_bytes, atomic_write_text, strict_json
from correlax.preprocess import to_uint8
from correlax.report.figures import heat_rgba
from correlax.report.tiles import dzi_descriptor, dzi_tiles, one_tile_level

OVERLAY_PIXELS = 1024  # longest side of an overlay's pyramid; the viewer stretches it over the image
METHOD_COLORS = {"correlax-prediction": "#ffd43b", "correlax-correlation": "#ff6b6b", "correlax-weighted": "#ff922b",
                 "relax": "#b197fc", "rise": "#63e6be", "gradcam": "#74c0fc", "occlusion": "#ffa94d", "center": "#ced4da",
                 "random": "#f783ac"}  # fmt: skip
ASSETS = ("openseadragon.min.js", "openseadragon-LICENSE.txt", "viewer.js", "viewer.css")

TILE_SIZE, TILE_OVERLAP = 510, 1  # DZI tiles of 512 px with their overlap
DATA_OPEN = '<script type="application/json" id="viewer-data">'  # the block that holds the image list
# Only the page's own script files run: no inline script, no eval, no plug-ins, nothing from elsewhere. The one
# inline style allowed, by its hash, is the rule OpenSeadragon 6.1.1 inserts (its touch-screen focus outline).
OSD_STYLE_HASH = "sha256-9xTiqzfwFaL2SGb1rmr8gysEwVVjIvqWAgmZgqFqpEE="
CSP = (f"default-src 'none'; script-src 'self'; style-src 'self' '{OSD_STYLE_HASH}'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; object-src 'none'")  # fmt: skip


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


HEAT_PALETTE = np.round(heat_rgba(np.linspace(0.0, 1.0, 256)) * 255).astype(np.uint8)  # (256, 4) RGBA


def heat_levels(values: np.ndarray) -> np.ndarray:
    """The map on its own scale as 0..255 indices into ``HEAT_PALETTE`` (the report's colours, low values
    see-through), at most ``OVERLAY_PIXELS`` on its longest side."""
    values = np.asarray(values, dtype=np.float32)
    scale = OVERLAY_PIXELS / max(values.shape)
    if scale < 1:
        size = (max(1, round(values.shape[1] * scale)), max(1, round(values.shape[0] * scale)))
        values = cv2.resize(values, size, interpolation=cv2.INTER_AREA)
    lo, hi = float(values.min()), float(values.max())
    norm = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return np.round(norm * 255).astype(np.uint8)


def _png(pixels: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """Grey pixels as a greyscale PNG, or indices with an RGBA ``palette`` as a palette PNG (a quarter of RGBA).
    OpenCV encodes grey several times faster than Pillow at the same size; only Pillow writes palettes."""
    if palette is None:
        ok, data = cv2.imencode(".png", pixels)
        if not ok:
            raise ValueError(f"cannot encode a {pixels.shape} {pixels.dtype} array as PNG")
        return data.tobytes()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    image.putpalette(palette.tobytes(), rawmode="RGBA")  # an L image becomes P, its values the indices
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def embed_json(value: object) -> str:
    """JSON for a ``<script type="application/json">`` block: ``<``, ``>`` and ``&`` as \\u escapes, so no
    string in it (``</script>``, ``<!--``) can end the block or start markup."""
    text = strict_json(value, indent=None)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def viewer_data(page: str | Path) -> dict:
    """The image list of a written viewer page (the inverse of the embedding in ``ViewerWriter.finish``)."""
    html = Path(page).read_text()
    start = html.index(DATA_OPEN) + len(DATA_OPEN)
    return json.loads(html[start : html.index("</script>", start)])


class ViewerWriter:
    """Writes ``out_dir/<page>`` and its files image by image (``add``), then the page (``finish``)."""

    def __init__(self, out_dir: str | Path, page: str = "index.html", title: str = "CorRELAX viewer"):
        self.out_dir, self.page, self.title = Path(out_dir), page, title
        self.asset_dir = self.out_dir / "viewer"
        self.entries: list[dict] = []

    def _write_pyramid(self, folder: str, name: str, pixels: np.ndarray, palette: np.ndarray | None = None) -> dict:
        """``<folder>/<name>.dzi`` and its tiles down to the first level of one tile; returns the tile source
        the page gives OpenSeadragon."""
        root = self.out_dir / folder
        h, w = pixels.shape[:2]
        min_level = one_tile_level(w, h, TILE_SIZE)
        for tile in dzi_tiles(pixels, TILE_SIZE, TILE_OVERLAP, min_level):
            path = root / f"{name}_files" / str(tile.level) / f"{tile.col}_{tile.row}.png"
            atomic_write_bytes(path, _png(tile.pixels, palette))
        atomic_write_text(root / f"{name}.dzi", dzi_descriptor(w, h, TILE_SIZE, TILE_OVERLAP, "png"))
        return {"tilesUrl": f"{folder}/{name}_files/", "fileFormat": "png", "width": w, "height": h,
                "tileSize": TILE_SIZE, "tileOverlap": TILE_OVERLAP, "minLevel": min_level}  # fmt: skip

    def add(self, image: ViewerImage) -> None:
        """Write the image and its overlays as tiled pyramids now; the page lists them when finished."""
        folder = f"viewer/{len(self.entries):04d}"
        grey = image.grey if image.grey.dtype == np.uint8 else to_uint8(image.grey)
        tiles = self._write_pyramid(folder, "image", grey)
        overlays = []
        for method, per_label in image.overlays.items():
            for label, values in per_label.items():
                source = self._write_pyramid(folder, f"{len(overlays):03d}", heat_levels(values), HEAT_PALETTE)
                rng = [float(np.min(values)), float(np.max(values))]
                overlays.append({"method": method, "label": label, "tiles": source, "range": rng})
        peaks = [
            {"method": m, "label": label, "x": float(p[0]), "y": float(p[1]), "value": float(p[2]) if len(p) > 2 else None}
            for m, per_label in image.peaks.items() for label, p in per_label.items()
        ]  # fmt: skip
        boxes = {label: [[float(v) for v in b] for b in bs] for label, bs in image.boxes.items()}
        h, w = grey.shape[:2]
        self.entries.append({"id": image.image_id, "width": w, "height": h, "tiles": tiles,
                             "overlays": overlays, "peaks": peaks, "boxes": boxes})  # fmt: skip

    def finish(self) -> Path:
        """Copy the scripts beside the page and write the page; return its path."""
        static = files("correlax.report") / "static"
        for name in ASSETS:
            atomic_write_bytes(self.asset_dir / name, (static / name).read_bytes())
        data = {"title": self.title, "colors": METHOD_COLORS, "images": self.entries}
        title = escape(self.title)
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{title}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="stylesheet" href="viewer/viewer.css"></head><body>'
            f'<aside><h1 title="{title}">{title}</h1><h2>Image</h2><select id="image"></select>'
            '<p class="note caption" id="caption"></p><h2>Maps (method × class)</h2><table id="layers"></table>'
            '<h2>Display</h2><label>opacity <input id="opacity" type="range" min="0" max="1" step="0.05"></label><br>'
            '<label><input id="boxes" type="checkbox"> true boxes</label> '
            '<label><input id="peaks" type="checkbox"> peaks of the maps shown</label>'
            '<h2>Zoom</h2><button id="zoom-in">+</button> <button id="zoom-out">−</button> '
            '<button id="zoom-fit">fit</button><p class="note">Scroll to zoom, drag to pan. Each map on its own '
            "colour scale (low values see-through); hover a marker for its value. OpenSeadragon, BSD-3 licence "
            '(viewer/openseadragon-LICENSE.txt).</p></aside><div id="osd"></div>'
            f"{DATA_OPEN}{embed_json(data)}</script>"
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
