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
from correlax.pipelines.claims import WAIT_SECONDS, ClaimTimeout
from correlax.pipelines.map_store import (
    EntryKey,
    ImageIdentity,
    MapStore,
    ModelKey,
    model_digest,
    preparation,
)
from correlax.preprocess import PreparedImage, PreprocessSettings, load_prepared
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
    repaired: list[str] = field(default_factory=list)  # damaged store entries found and computed again


def entry_for(
    key: EntryKey, stores: Sequence[MapStore], compute: Callable[[], dict], what: str,
    complete: Callable[[dict], bool] = lambda entry: True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The stored entry of ``key`` (first store that has it, waiting, within the store's bound, while another
    worker computes it in the first), else computed and saved to the first store. A damaged entry is
    computed again, and so is one that is not ``complete`` (written by an older version, without a map asked
    for now). ``what`` (the image) names a wait that ran out (ClaimTimeout)."""
    for store in stores:
        found = store.load(key)
        if found is not None and complete(found):
            return found
    store = stores[0]
    while True:
        claim = store.claim(key)
        if claim is not None:
            with claim:
                entry = compute()
                store.save(key, entry)
                return entry
        waited = store.wait_for(key, what)
        if waited is not None and complete(waited):
            return waited


@dataclass(frozen=True)
class LocalisationJob:
    """What to explain and score: a model and its pre-processing, images of a manifest, methods, settings;
    where the maps are kept, and how the points are scored.

    ``store_dir``: the map store to read and fill; ``explain_dir``: the ``--out`` of an earlier
    ``correlax explain``, looked up read-only. ``spacing`` (mm) stands in for files and records that state
    none. ``margin_px``: the reference protocol's box margin (default: the stride). ``max_panels``: per-image
    panels kept for the report. ``wait_seconds``: the longest wait for another worker's map.
    """

    model: nn.Module
    preprocess: PreprocessSettings
    manifest: Manifest
    records: Sequence[ImageRecord]
    methods: Sequence[str]
    settings: CorrelaxSettings
    store_dir: Path
    run: RunSettings = RunSettings()
    explain_dir: Path | None = None
    spacing: float | None = None
    tolerance_mm: float | None = None
    margin_px: float | None = None
    max_panels: int = 12
    wait_seconds: float = WAIT_SECONDS

    @property
    def margin(self) -> float:
        return self.settings.stride if self.margin_px is None else self.margin_px


def explain_and_score(
    job: LocalisationJob, progress: Callable[[Iterable], Iterable] = iter, viewer: ViewerWriter | None = None
) -> LocalisationResult:
    """Explain every boxed image of ``job.records`` with ``job.methods`` and score both Pointing Game protocols.

    ``viewer`` gets every scored image with its maps, boxes and pointed locations. A bad image (also one
    whose map another worker kept for longer than ``job.wait_seconds``) is logged and listed in
    ``failures``; the others go on.
    """
    model, preprocess, manifest, methods, settings = job.model, job.preprocess, job.manifest, job.methods, job.settings
    labels = tuple(model.labels)
    explainers = create_explainers(methods, model, settings, run=job.run)
    tolerance = {"tolerance_px": None, "tolerance_mm": job.tolerance_mm} if job.tolerance_mm else {}
    scorer = MultiMethodScorer(labels, margin_px=job.margin, **tolerance)
    weights = model_digest(model, preprocess.to_dict())
    stores = [MapStore(job.store_dir, wait_seconds=job.wait_seconds)]
    if job.explain_dir is not None:
        stores.append(MapStore(Path(job.explain_dir) / "maps", readonly=True))
    result = LocalisationResult(pointing_game={}, panels=[])
    for record in progress(boxed_records(job.records, labels)):
        path = manifest.resolve(record)
        spacing = record.spacing or job.spacing
        try:
            prepared = load_prepared(path, preprocess, spacing=spacing)
            identity = ImageIdentity.of(path)
            maps = record_maps(explainers, methods, ModelKey(weights, preparation(preprocess.to_dict(), spacing)),
                               identity, prepared, stores)  # fmt: skip
        except (ImageReadError, ValueError, OSError, ClaimTimeout) as exc:
            msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            log.error("%s", msg)
            result.failures.append((str(path), msg))
            continue
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
        if len(result.panels) < job.max_panels:
            image_panels = panels_for_image(
                record.image_id, prepared.image, maps, labels, boxes, points, prepared.breast_box
            )
            result.panels += image_panels[: job.max_panels - len(result.panels)]
    result.pointing_game = scorer.result()
    result.repaired = [str(d) for store in stores for d in store.damaged]
    return result


def record_maps(
    explainers: Sequence[Explainer], methods: Sequence[str], model_key: ModelKey, identity: ImageIdentity,
    prepared: PreparedImage, stores: Sequence[MapStore],
) -> dict[str, np.ndarray]:  # fmt: skip
    """Every method's map of one image, from the stores or computed (the tensor is made once, when needed)."""
    image = None
    maps: dict[str, np.ndarray] = {}
    for explainer in explainers:

        def compute(explainer=explainer) -> dict:
            nonlocal image
            image = prepared.tensor() if image is None else image
            return explainer.entry(image, prepared.breast_box)

        wanted = set(methods) & set(explainer.methods)
        entry = entry_for(model_key.entry(identity, explainer), stores, compute, identity.path,
                          lambda e, explainer=explainer: wanted <= explainer.maps_of(e).keys())  # fmt: skip
        maps.update({m: v for m, v in explainer.maps_of(entry).items() if m in methods})
    return {m: maps[m] for m in methods}


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
    progress: Callable[[Iterable], Iterable] = iter,
) -> tuple[dict, LocalisationResult]:
    """Explain and score, then write ``out/metrics.json`` (strict JSON) and ``out/report/report.html``."""
    from correlax.evaluation.localisation import classifier_summary
    from correlax.fileio import write_json
    from correlax.provenance import provenance
    from correlax.report import write_report

    viewer = ViewerWriter(out / "report", page="viewer.html", title=f"{title}: images")
    result = explain_and_score(job, progress, viewer)
    settings = job.settings
    geometry = geometry_mm(settings, job.margin, result.spacings)
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
    metrics["repaired_map_entries"] = result.repaired
    write_json(out / "metrics.json", metrics)
    write_report(out / "report", metrics, result.panels, viewer=viewer.finish())
    return metrics, result
