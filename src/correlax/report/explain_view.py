"""The viewer for a folder of ``correlax explain`` outputs: each source image at its stored resolution.

``read_explain_output`` is the one place that knows the output layout (``<stem>.json`` + ``<stem>.npz``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from correlax.data.records import Box, Manifest
from correlax.errors import FileProblem
from correlax.explain.explainer import method_maps
from correlax.io import read_image
from correlax.labels import NO_FINDING
from correlax.preprocess import PreparedGeometry, breast_bbox, resample, to_uint8
from correlax.report.viewer import ViewerImage

log = logging.getLogger(__name__)

PEAK_METHODS = {"prediction": "correlax-prediction", "corr_pred": "correlax-correlation", "rise": "rise", "relax": "relax"}


@dataclass
class ExplainOutput:
    """What ``correlax explain`` wrote for one image; maps and peaks on the prepared grid."""

    source: Path
    labels: tuple[str, ...]
    maps: dict[str, np.ndarray]  # {method: (L, H, W)}
    peaks: dict[str, dict[str, tuple[float, float, float]]]  # {method: {label: (x, y, value)}}
    breast_box: tuple[int, int, int, int]
    geometry: PreparedGeometry | None  # None: not recorded, inferred from the source


def read_explain_output(summary_path: Path) -> ExplainOutput:
    """Read ``<stem>.json`` and ``<stem>.npz`` (a relative ``source`` is relative to the working directory, as
    ``correlax explain`` was given it)."""
    try:
        summary = json.loads(summary_path.read_text())
        with np.load(summary_path.with_suffix(".npz")) as data:
            maps = method_maps({k: data[k] for k in ("prediction", "corr_pred", "relax", "rise")})
    except (OSError, ValueError, KeyError) as exc:
        raise FileProblem(summary_path, f"not a complete 'correlax explain' output ({type(exc).__name__}: {exc})") from exc
    labels = tuple(summary["labels"])
    peaks: dict[str, dict] = {}
    for name, method in PEAK_METHODS.items():
        found = summary.get("peaks", {}).get(name, {})
        per_label = {label: found for label in labels} if "x" in found else found  # relax: one map for all
        peaks[method] = {label: (p["x"], p["y"], p["value"]) for label, p in per_label.items()}
    geometry = summary.get("geometry")
    return ExplainOutput(
        source=Path(summary["source"]),
        labels=labels,
        maps=maps,
        peaks=peaks,
        breast_box=tuple(summary["breast_box"]),
        geometry=PreparedGeometry.from_dict(geometry) if geometry else None,
    )


def infer_geometry(grey: np.ndarray, prepared_shape: tuple[int, int], breast_box) -> PreparedGeometry:
    """The geometry of outputs that do not record it: the scale from the shapes; flipped when the recorded
    breast box is the mirror image of the one found in the source resampled to the prepared grid."""
    h, w = prepared_shape
    resized = resample(to_uint8(grey), h / grey.shape[0], w / grey.shape[1])
    x0, y0, x1, y1 = breast_bbox(resized)
    mirrored = (w - x1, y0, w - x0, y1)
    flipped = tuple(breast_box) == mirrored and mirrored != (x0, y0, x1, y1)
    return PreparedGeometry(stored_shape=grey.shape[:2], prepared_shape=(h, w), flipped=flipped)


def explain_viewer_image(
    output: ExplainOutput, image_id: str, boxes: Mapping[str, list[Box]] | None = None
) -> ViewerImage:
    """The source at its stored resolution, the maps mirrored back where the flip applied, peaks on the stored
    grid; ``boxes`` ({label: boxes} in stored pixels, e.g. from a manifest) are shown as they are."""
    grey = to_uint8(read_image(output.source).pixels)
    prepared_shape = next(iter(output.maps.values())).shape[1:]
    geometry = output.geometry or infer_geometry(grey, prepared_shape, output.breast_box)
    if geometry.stored_shape != grey.shape:
        raise FileProblem(output.source, f"{grey.shape} pixels, but the maps were made for {geometry.stored_shape}")
    maps = {m: geometry.orient_like_stored(v) for m, v in output.maps.items()}
    peaks = {}
    for method, per_label in output.peaks.items():
        points = geometry.points_to_stored([p[:2] for p in per_label.values()]) if per_label else []
        peaks[method] = {label: (*xy, p[2]) for (label, p), xy in zip(per_label.items(), points)}
    return ViewerImage.from_maps(image_id, grey, maps, output.labels, boxes=boxes or {}, peaks=peaks)


def explain_viewer_images(
    out_dir: Path, failures: list[str], boxes_by_source: Mapping[Path, Mapping[str, list[Box]]] | None = None
) -> Iterator[ViewerImage]:
    """One viewer image per ``<stem>.json`` in ``out_dir``; an output that cannot be shown is logged and
    appended to ``failures``, and the others go on. ``boxes_by_source`` is keyed by resolved source path."""
    for summary_path in sorted(out_dir.glob("*.json")):
        try:
            output = read_explain_output(summary_path)
            boxes = (boxes_by_source or {}).get(output.source.resolve())
            yield explain_viewer_image(output, summary_path.stem, boxes)
        except FileProblem as exc:
            log.error("%s", exc)
            failures.append(str(exc))


def manifest_boxes(manifest: Manifest) -> dict[Path, dict[str, list[Box]]]:
    """The true boxes of every image in a manifest, by resolved image path, in stored pixels."""
    out: dict[Path, dict[str, list[Box]]] = {}
    for record in manifest.records:
        for finding in record.findings:
            if finding.box is not None and finding.label != NO_FINDING:
                out.setdefault(manifest.resolve(record).resolve(), {}).setdefault(finding.label, []).append(finding.box)
    return out
