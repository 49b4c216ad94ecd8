"""The viewer for a folder of ``correlax explain`` outputs: each source image at its stored resolution.

``read_explain_output`` is the one place that knows the output layout (``<name>.json`` + ``<name>.npz``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from correlax.data.records import Manifest
from correlax.geometry import AnnotationBox
from correlax.errors import FileProblem
from correlax.explain.explainer import method_maps
from correlax.io import read_image
from correlax.labels import NO_FINDING
from correlax.pipelines.explain_outputs import summary_files
from correlax.pipelines.map_store import DamagedEntry, ImageIdentity, read_entry
from correlax.preprocess import PreparedGeometry, to_uint8
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
    flipped: bool  # the canonical flip applied to the prepared grid


def explained_source(summary: dict, summary_path: Path) -> Path:
    """The file the maps were made from: the input's resolved path and bytes as ``explain`` recorded them (outputs
    of earlier versions: ``source``, relative to the working directory). FileProblem when the file there is no
    longer the one explained: its maps would be drawn over another image."""
    recorded = summary.get("input")
    if not recorded:
        return Path(summary["source"])
    path = Path(recorded["path"])
    try:
        now = ImageIdentity.of(path)
    except OSError as exc:
        raise FileProblem(summary_path, f"its source {path} cannot be read ({exc.strerror or exc})") from exc
    if now.sha256 != recorded["sha256"]:
        raise FileProblem(summary_path, f"its source {path} has changed since it was explained; explain it again")
    return path


def read_explain_output(summary_path: Path) -> ExplainOutput:
    """Read ``<name>.json`` and ``<name>.npz``, and check that the source is still the file explained."""
    try:
        summary = json.loads(summary_path.read_text())
        labels, flipped = tuple(summary["labels"]), bool(summary["grid"]["flipped"])
        _, arrays = read_entry(summary_path.with_suffix(".npz"))
        maps = method_maps(arrays)
        peaks: dict[str, dict] = {}
        for name, method in PEAK_METHODS.items():
            if method not in maps:  # an output made without masks: the prediction map alone
                continue
            found = summary["peaks"][name]
            per_label = {label: found for label in labels} if "x" in found else found  # relax: one map for all
            peaks[method] = {label: (p["x"], p["y"], p["value"]) for label, p in per_label.items()}
    except DamagedEntry as exc:
        raise FileProblem(exc.path, f"{exc.cause}; rerun 'correlax explain' to compute it again") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        cause = f"not a complete 'correlax explain' output ({type(exc).__name__}: {exc})"
        raise FileProblem(summary_path, cause) from exc
    return ExplainOutput(explained_source(summary, summary_path), labels, maps, peaks, flipped)


def explain_viewer_image(
    output: ExplainOutput, image_id: str, boxes: Mapping[str, list[AnnotationBox]] | None = None
) -> ViewerImage:
    """The source at its stored resolution, the maps mirrored back where the flip applied, peaks on the stored
    grid; ``boxes`` ({label: boxes} in stored pixels, e.g. from a manifest) are shown as they are."""
    grey = to_uint8(read_image(output.source).pixels)
    prepared_shape = next(iter(output.maps.values())).shape[1:]
    geometry = PreparedGeometry(stored_shape=grey.shape, prepared_shape=prepared_shape, flipped=output.flipped)
    maps = {m: geometry.orient_like_stored(v) for m, v in output.maps.items()}
    peaks = {}
    for method, per_label in output.peaks.items():
        points = geometry.points_to_stored([p[:2] for p in per_label.values()]) if per_label else []
        peaks[method] = {label: (*xy, p[2]) for (label, p), xy in zip(per_label.items(), points)}
    return ViewerImage.from_maps(image_id, grey, maps, output.labels, boxes=boxes or {}, peaks=peaks)


def explain_viewer_images(
    out_dir: Path, failures: list[str], boxes_by_source: Mapping[Path, Mapping[str, list[AnnotationBox]]] | None = None
) -> Iterator[ViewerImage]:
    """One viewer image per ``<stem>.json`` in ``out_dir``; an output that cannot be shown is logged and
    appended to ``failures``, and the others go on. ``boxes_by_source`` is keyed by resolved source path."""
    for summary_path in summary_files(out_dir):
        try:
            output = read_explain_output(summary_path)
            boxes = (boxes_by_source or {}).get(output.source.resolve())
            yield explain_viewer_image(output, summary_path.relative_to(out_dir).with_suffix("").as_posix(), boxes)
        except FileProblem as exc:
            log.error("%s", exc)
            failures.append(str(exc))


def manifest_boxes(manifest: Manifest) -> dict[Path, dict[str, list[AnnotationBox]]]:
    """The true boxes of every image in a manifest, by resolved image path, in stored pixels."""
    out: dict[Path, dict[str, list[AnnotationBox]]] = {}
    for record in manifest.records:
        for finding in record.findings:
            if finding.box is not None and finding.label != NO_FINDING:
                out.setdefault(manifest.resolve(record).resolve(), {}).setdefault(finding.label, []).append(finding.box)
    return out
