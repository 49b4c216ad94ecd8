"""``correlax pointing-game`` as a library call, used by the CLI, the demo and cross-validation.

Explain the boxed images of a split with every method, play both Pointing Game protocols, collect
per-image outcomes and report panels. Maps come from, and go to, the map store ``OUT/maps``
(:mod:`correlax.pipelines.map_store`): an interrupted run resumes, a second run with more methods
computes only the new ones, and ``explain_dir`` (the ``--out`` of an earlier ``correlax explain``)
is looked up read-only — its entries count only when they were made from the same file, model
and method settings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from correlax.data.records import ImageRecord, Manifest
from correlax.evaluation.localisation import boxed_records, boxes_in_prepared
from correlax.evaluation.pointing_game import MultiMethodScorer
from correlax.explain.settings import CorrelaxSettings, RunSettings
from correlax.explain.base import Explainer
from correlax.explain.registry import create_explainers
from correlax.io import ImageReadError
from correlax.pipelines.map_store import EntryKey, ImageIdentity, MapStore, model_digest
from correlax.preprocess import PreprocessSettings, load_prepared
from correlax.report import ImagePanel, panels_for_image
from correlax.report.viewer import ViewerImage, ViewerWriter, reference_peaks

log = logging.getLogger(__name__)


@dataclass
class LocalisationResult:
    """The Pointing Game over a split: scores per method, report panels, per-pair outcomes and failures."""
    pointing_game: dict  # {method: PointingGameScorer.result()}
    panels: list[ImagePanel]
    outcomes: list[dict] = field(default_factory=list)  # per image, class and method: points and hits
    spacings: list[tuple[float, float]] = field(default_factory=list)  # mm of each scored image's map grid
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def entry_for(
    explainer: Explainer, key: EntryKey, stores: Sequence[MapStore], compute: Callable[[], dict]
) -> dict[str, np.ndarray]:
    """The stored entry of ``key`` (first store that has it, waiting while another worker computes it in the
    first), else computed and saved to the first store."""
    for store in stores:
        found = store.load(key)
        if found is not None:
            return found
    store = stores[0]
    while True:
        claim = store.claim(key)
        if claim is not None:
            with claim:
                entry = compute()
                store.save(key, entry)
                return entry
        waited = store.wait_for(key)
        if waited is not None:
            return waited


@dataclass(frozen=True)
class LocalisationJob:
    """What to explain and score: a model and its pre-processing, images of a manifest, methods, settings."""

    model: nn.Module
    preprocess: PreprocessSettings
    manifest: Manifest
    records: Sequence[ImageRecord]
    methods: Sequence[str]
    settings: CorrelaxSettings
    run: RunSettings = RunSettings()


def explain_and_score(
    job: LocalisationJob,
    store_dir: Path,
    max_panels: int = 12,
    tolerance_mm: float | None = None,
    margin_px: float | None = None,
    progress: Callable[[Iterable], Iterable] = iter,
    explain_dir: Path | None = None,
    spacing: float | None = None,
    viewer: ViewerWriter | None = None,
) -> LocalisationResult:
    """Explain every boxed image of ``records`` with ``methods`` and score both Pointing Game protocols.

    ``margin_px``: the reference protocol's box margin (default: the stride). ``spacing`` (mm) stands in
    for files that state none. ``viewer`` gets every scored image with its maps, boxes and pointed locations.
    A bad image is logged and listed in ``failures``; the others go on.
    """
    model, preprocess, manifest, methods, settings = job.model, job.preprocess, job.manifest, job.methods, job.settings
    labels = tuple(model.labels)
    explainers = create_explainers(methods, model, settings, run=job.run)
    tolerance = {"tolerance_px": None, "tolerance_mm": tolerance_mm} if tolerance_mm else {}
    scorer = MultiMethodScorer(labels, margin_px=settings.stride if margin_px is None else margin_px, **tolerance)
    model_key = model_digest(model, preprocess.to_dict())
    stores = [MapStore(store_dir)]
    if explain_dir is not None:
        stores.append(MapStore(Path(explain_dir) / "maps", readonly=True))
    result = LocalisationResult(pointing_game={}, panels=[])
    for record in progress(boxed_records(job.records, labels)):
        path = manifest.resolve(record)
        try:
            prepared = load_prepared(path, preprocess, spacing=record.spacing or spacing)
            identity = ImageIdentity.of(path)
        except (ImageReadError, ValueError, OSError) as exc:
            msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            log.error("%s", msg)
            result.failures.append((str(path), msg))
            continue
        image = None
        maps: dict[str, np.ndarray] = {}
        for explainer in explainers:
            key = EntryKey(identity, model_key, explainer.name, explainer.settings_key())

            def compute(explainer=explainer) -> dict:
                nonlocal image
                image = prepared.tensor() if image is None else image
                return explainer.entry(image, prepared.breast_box)

            produced = explainer.maps_of(entry_for(explainer, key, stores, compute))
            maps.update({m: v for m, v in produced.items() if m in methods})
        maps = {m: maps[m] for m in methods}
        boxes = boxes_in_prepared(record, prepared)
        if prepared.spacing:
            result.spacings.append(tuple(prepared.spacing))
        points = scorer.add(maps, boxes, prepared.breast_box, prepared.spacing)
        result.outcomes += [
            {"image_id": record.image_id, "label": label, "method": method,
             "reference_hit": p["reference"].hit, "standard_hit": p["standard"].hit,
             "x": p["reference"].x, "y": p["reference"].y, "value": p["reference"].value}
            for method, per_label in points.items() for label, p in per_label.items()
        ]  # fmt: skip
        if viewer is not None:
            peaks = reference_peaks(points)
            viewer.add(ViewerImage.from_maps(record.image_id, prepared.image[..., 0], maps, labels, boxes, peaks))
        if len(result.panels) < max_panels:
            image_panels = panels_for_image(
                record.image_id, prepared.image, maps, labels, boxes, points, prepared.breast_box
            )
            result.panels += image_panels[: max_panels - len(result.panels)]
    result.pointing_game = scorer.result()
    return result


def geometry_mm(settings: CorrelaxSettings, margin_px: float, spacings: Sequence[tuple[float, float]]) -> dict:
    """Window, stride and Pointing Game margin in mm (mean pixel spacing of the scored maps; None when unknown)."""
    if not spacings:
        return {"window_mm": None, "stride_mm": None, "margin_mm": None, "spacing_mm": None}
    mm = float(np.mean([(r + c) / 2 for r, c in spacings]))
    return {"window_mm": settings.window * mm, "stride_mm": settings.stride * mm, "margin_mm": margin_px * mm,
            "spacing_mm": mm}  # fmt: skip


def describe_geometry(g: dict, settings: CorrelaxSettings) -> str:
    """The window, stride and margin in words, in mm where the pixel spacing is known."""
    px = f"window {settings.window} px, stride {settings.stride} px"
    if g["window_mm"] is None:
        return px + " (pixel spacing unknown)"
    return (f"window {g['window_mm']:.1f} mm, stride {g['stride_mm']:.1f} mm, Pointing Game margin "
            f"{g['margin_mm']:.1f} mm ({px} at {g['spacing_mm']:.3g} mm per pixel)")  # fmt: skip


def run_pointing_game(
    job: LocalisationJob,
    out: Path,
    run_facts: dict,
    title: str,
    classification: dict | None = None,
    **options,
) -> tuple[dict, LocalisationResult]:
    """Explain and score, then write ``out/metrics.json`` (strict JSON) and ``out/report/report.html``.
    ``options`` go to :func:`explain_and_score` (``max_panels``, ``tolerance_mm``, ``margin_px``, ...)."""
    from correlax.evaluation.localisation import classifier_summary
    from correlax.fileio import write_json
    from correlax.provenance import provenance
    from correlax.report import write_report

    options.setdefault("store_dir", out / "maps")
    viewer = ViewerWriter(out / "report", page="viewer.html", title=f"{title}: images")
    result = explain_and_score(job, viewer=viewer, **options)
    settings = job.settings
    margin_px = settings.stride if options.get("margin_px") is None else options["margin_px"]
    geometry = geometry_mm(settings, margin_px, result.spacings)
    metrics: dict = {"provenance": provenance(), "title": title}
    metrics["run"] = {**run_facts, "CorRELAX geometry": describe_geometry(geometry, settings)}
    if classification is not None:
        metrics["classifier"] = classifier_summary(classification)
        metrics["classification"] = classification
    metrics.update(geometry)
    metrics["settings"] = settings.to_dict()
    metrics["pointing_game"] = result.pointing_game
    metrics["outcomes"] = result.outcomes
    metrics["failures"] = [{"path": p, "reason": r} for p, r in result.failures]
    write_json(out / "metrics.json", metrics)
    write_report(out / "report", metrics, result.panels, viewer=viewer.finish())
    return metrics, result
