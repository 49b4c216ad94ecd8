"""Localisation evaluation: explain the boxed images of a split with every method and play the Pointing Game.

The per-image maps are cached (``maps/<fingerprint>/<image_id>.npz``, float16, written atomically), so an
interrupted run resumes where it stopped and a second run with more methods computes only the new ones. The
fingerprint covers the model's weights and labels, the pre-processing and the CorRELAX settings: maps made
another way are never reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from correlax.data.records import Box, ImageRecord, Manifest
from correlax.fileio import atomic_write_bytes
from correlax.evaluation.pointing_game import MultiMethodScorer
from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.baselines import CenterExplainer, GradCamExplainer, OcclusionExplainer, RandomPointExplainer
from correlax.explain.base import Explainer
from correlax.explain.batch import read_method_maps
from correlax.io import ImageReadError, read_image
from correlax.labels import NO_FINDING
from correlax.preprocess import PreparedImage, PreprocessSettings, prepare
from correlax.report import ImagePanel, panels_for_image

log = logging.getLogger(__name__)

CORRELAX_METHODS = ("correlax-prediction", "correlax-correlation", "relax", "rise")
METHODS = (*CORRELAX_METHODS, "gradcam", "occlusion", "center", "random")


@dataclass
class LocalisationResult:
    pointing_game: dict  # {method: PointingGameScorer.result()}
    panels: list[ImagePanel]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def build_explainers(
    model: nn.Module, methods: Sequence[str], settings: CorrelaxSettings, seed: int = 0
) -> list[tuple[tuple[str, ...], Explainer]]:
    """The explainers that produce ``methods``, each with the method names it gives.

    One CorRELAX run gives all four CorRELAX maps; the windowed baselines use the same window and stride.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    labels = tuple(model.labels)
    groups: list[tuple[tuple[str, ...], Explainer]] = []
    wanted = tuple(m for m in CORRELAX_METHODS if m in methods)
    if wanted:
        groups.append((wanted, CorrelaxExplainer(model, settings)))
    factories: dict[str, Callable[[], Explainer]] = {
        "gradcam": lambda: GradCamExplainer(model, settings.window, settings.stride),
        # a W/4 patch every W/4 (16 occluded forwards per window): the occlusion baseline stays a small
        # share of the run instead of outweighing CorRELAX at few masks
        "occlusion": lambda: OcclusionExplainer(model, settings.window, patch_stride=settings.window // 4),
        "center": lambda: CenterExplainer(labels),
        "random": lambda: RandomPointExplainer(labels, seed=seed),
    }
    groups += [((name,), factories[name]()) for name in METHODS[len(CORRELAX_METHODS) :] if name in methods]
    return groups


def boxed_records(records: Iterable[ImageRecord], labels: Sequence[str]) -> list[ImageRecord]:
    """The images the Pointing Game scores: at least one box of a label the model knows (not No Finding)."""
    known = set(labels) - {NO_FINDING}
    return [r for r in records if any(f.box is not None and f.label in known for f in r.findings)]


def prepare_record(manifest: Manifest, record: ImageRecord, settings: PreprocessSettings) -> PreparedImage:
    """Read and pre-process one record's image; the record's spacing fills in for files that state none."""
    mammogram = read_image(manifest.resolve(record))
    if mammogram.spacing is None and record.spacing is not None:
        mammogram = dataclasses.replace(mammogram, spacing=tuple(record.spacing))
    return prepare(mammogram, settings)


def boxes_in_prepared(record: ImageRecord, prepared: PreparedImage) -> dict[str, list[Box]]:
    boxes: dict[str, list[Box]] = {}
    for f in record.findings:
        if f.box is not None and f.label != NO_FINDING:
            boxes.setdefault(f.label, []).append(prepared.map_box(f.box))
    return boxes


def _load_cached(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path) as data:
            return {m: data[m].astype(np.float32) for m in data.files}
    except (OSError, ValueError) as exc:  # a damaged cache file is recomputed, not fatal
        log.warning("%s: unreadable map cache, recomputing (%s)", path, exc)
        return {}


def maps_fingerprint(model: nn.Module, preprocess: PreprocessSettings, settings: CorrelaxSettings) -> str:
    """A short hash of everything that shapes the maps: weights, labels, pre-processing, CorRELAX settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(model.labels), preprocess.to_dict(), settings.to_dict()], sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def _as_stored(values: np.ndarray) -> np.ndarray:
    """Maps are scored as the cache stores them, so a resumed run gives the same points as an uninterrupted one."""
    return values.astype(np.float16).astype(np.float32)


def _save_cached(path: Path, maps: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{m: v.astype(np.float16) for m, v in maps.items()})
    atomic_write_bytes(path, buffer.getvalue())


def explain_and_score(
    model: nn.Module,
    preprocess: PreprocessSettings,
    manifest: Manifest,
    records: Sequence[ImageRecord],
    methods: Sequence[str],
    settings: CorrelaxSettings,
    cache_dir: Path,
    max_panels: int = 12,
    tolerance_mm: float | None = None,
    progress: Callable[[Iterable], Iterable] = iter,
    explain_dir: Path | None = None,
) -> LocalisationResult:
    """Explain every boxed image of ``records`` with ``methods`` and score both Pointing Game protocols.

    CorRELAX maps that ``correlax explain`` wrote to ``explain_dir`` with the same settings are reused.
    A bad image is logged and listed in ``failures``; the others go on.
    """
    labels = tuple(model.labels)
    groups = build_explainers(model, methods, settings)
    tolerance = {"tolerance_px": None, "tolerance_mm": tolerance_mm} if tolerance_mm else {}
    scorer = MultiMethodScorer(labels, margin_px=settings.stride, **tolerance)
    fingerprint = maps_fingerprint(model, preprocess, settings)
    result = LocalisationResult(pointing_game={}, panels=[])
    for record in progress(boxed_records(records, labels)):
        path = manifest.resolve(record)
        try:
            prepared = prepare_record(manifest, record, preprocess)
        except (ImageReadError, ValueError) as exc:
            log.error("%s", exc)
            result.failures.append((str(path), str(exc)))
            continue
        cache = cache_dir / fingerprint / f"{record.image_id}.npz"
        maps = _load_cached(cache)
        known = set(maps)
        if explain_dir is not None and not set(CORRELAX_METHODS) <= known:
            reused = read_method_maps(explain_dir, Path(record.path).stem, settings, labels) or {}
            maps.update({m: _as_stored(v) for m, v in reused.items()})
        todo = [(names, explainer) for names, explainer in groups if not set(names) <= set(maps)]
        image = prepared.tensor() if todo else None
        for names, explainer in todo:
            produced = explainer.attribute(image, breast_box=prepared.breast_box)
            maps.update({m: _as_stored(produced[m]) for m in names})
        if set(maps) != known:
            _save_cached(cache, maps)
        maps = {m: maps[m] for m in methods}
        boxes = boxes_in_prepared(record, prepared)
        points = scorer.add(maps, boxes, prepared.breast_box, prepared.spacing)
        if len(result.panels) < max_panels:
            image_panels = panels_for_image(
                record.image_id, prepared.image, maps, labels, boxes, points, prepared.breast_box
            )
            result.panels += image_panels[: max_panels - len(result.panels)]
    result.pointing_game = scorer.result()
    return result


def classifier_summary(report: dict) -> dict:
    """The metrics.json ``classifier`` block from a crop-level classification report, at the decision
    threshold the model ships with: the validation-chosen one when the report has it, else 0.5."""
    at = {label: e.get("at_chosen", e["at_0.5"]) for label, e in report["labels"].items()}
    return {key: {label: a[key] for label, a in at.items()} for key in ("threshold", "precision", "recall", "f1")}
