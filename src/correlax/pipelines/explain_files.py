"""``correlax explain`` as a library call: image files in, per-image maps and outputs in one folder.

The maps go to the map store ``OUT/maps`` (:mod:`correlax.pipelines.map_store`); for each input,
``OUT/<name>.npz`` (the store entry: maps and window-grid values), ``OUT/<name>_<label>.png``
(overlays) and ``OUT/<name>.json`` (source, key, peaks; written last) are its readable view.
``<name>`` is the input's path relative to the folder it was found in (or its stem when given
as a file), without the suffix, made unique. A rerun skips an input only when its JSON names the
same store entry, that is the same file, model and method settings; concurrent runs and ranks
claim images one by one, so each image is computed once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from correlax.evaluation.pointing_game import peak_in_box
from correlax.explain.explainer import CorrelaxExplainer
from correlax.explain.settings import CorrelaxSettings, RunSettings
from correlax.fileio import atomic_write_bytes, atomic_write_text, remove_stale_temporaries, write_json
from correlax.io import MAX_PIXELS, OUTPUT_MARKER, find_images
from correlax.pipelines.map_store import Claim, EntryKey, ImageIdentity, MapStore, model_digest
from correlax.pipelines.prefetch import Loaded, prefetch
from correlax.pipelines.progress import ImageProgress
from correlax.preprocess import PreparedImage

log = logging.getLogger(__name__)

PEAK_MAPS = ("prediction", "corr_pred", "rise")  # per class; corr_dist and relax are single maps
STORE_DIR = "maps"


class InputError(ValueError):
    """The inputs cannot be explained at all (an empty folder, an output folder given as input, …)."""


def collect_inputs(
    paths: Iterable[str | Path], exclude: Sequence[Path] = ()
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(file, output name) for every input, and the files passed over with why. Files are taken as given;
    folders are searched (:func:`correlax.io.find_images`), never inside ``exclude`` (the output folder).
    Raises NoImagesFound for a folder without any image file, InputError for a file inside ``exclude``."""
    excluded = [Path(e).resolve() for e in exclude]
    found: list[tuple[Path, str]] = []
    skipped: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files, passed = find_images([p], exclude=excluded)
            found += [(f, f.relative_to(p).with_suffix("").as_posix()) for f in files]
            skipped += passed
        elif any(e == p.resolve() or e in p.resolve().parents for e in excluded):
            raise InputError(f"{p}: inside the output folder; correlax does not explain its own outputs")
        else:  # a missing file fails later, with its name; a FIFO or device is passed over, never opened
            files, passed = find_images([p])
            found += [(f, f.stem) for f in files]
            skipped += passed
    first: dict[Path, tuple[Path, str]] = {}
    for path, name in found:
        first.setdefault(path.resolve(), (path, name))
    return unique_names(list(first.values())), skipped


def unique_names(inputs: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Safe, distinct output names: only [A-Za-z0-9._-/], no '..' or absolute part; clashes get a suffix."""
    out, seen = [], set()
    for path, name in inputs:
        parts = [re.sub(r"[^A-Za-z0-9._-]", "_", part) for part in name.split("/") if part not in ("", ".", "..")]
        base = "/".join(parts) or "image"
        candidate, i = base, 1
        while candidate.lower() in seen:
            i += 1
            candidate = f"{base}-{i}"
        seen.add(candidate.lower())
        out.append((path, candidate))
    return out


def peaks(maps: dict[str, np.ndarray], labels: Sequence[str], breast_box, prepared: PreparedImage) -> dict:
    """Peak of every map inside the breast box: prepared-grid pixels and the source file's pixels."""
    box = tuple(int(v) for v in breast_box)

    def peak(m: np.ndarray) -> dict:
        x, y, value = peak_in_box(m, box)
        sx, sy = prepared.to_stored(x, y)
        return {"x": x, "y": y, "value": value, "source_x": sx, "source_y": sy}

    out: dict = {name: {label: peak(maps[name][c]) for c, label in enumerate(labels)} for name in PEAK_MAPS if name in maps}
    out.update({name: peak(maps[name]) for name in ("corr_dist", "relax") if name in maps})  # without masks: none
    return out


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` becomes the same file as ``source`` (a hard link where the file system allows), atomically."""
    tmp = target.with_name(f".{target.name}.link.tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def write_outputs(out_dir: Path, name: str, source: Path, key: EntryKey, entry_path: Path, entry: dict,
                  prepared: PreparedImage) -> None:  # fmt: skip
    """Write one image's outputs beside the map store entry: the ``.npz``, PNG overlays and the JSON of peaks."""
    from correlax.report.overlays import overlay_png

    labels = [str(v) for v in entry["labels"]]
    link_or_copy(entry_path, out_dir / f"{name}.npz")
    grey = prepared.image[..., 0]
    for c, label in enumerate(labels):
        correlation = entry["corr_pred"][c] if "corr_pred" in entry else None  # an entry made without masks has none
        png = overlay_png(grey, entry["prediction"][c], correlation, label, source.name)
        atomic_write_bytes(out_dir / f"{name}_{label}.png", png)
    sy, sx = prepared.spacing or (None, None)
    summary = {
        "source": str(source),
        "key": key.hex,
        "maps": entry_path.relative_to(out_dir).as_posix(),
        "labels": labels,
        "breast_box": [int(v) for v in entry["breast_box"]],
        "grid": {
            "note": "x, y: pixels of the prepared grid the maps are on; source_x, source_y: pixels of the file",
            "shape": list(prepared.image.shape[:2]),
            "spacing_mm": None if sy is None else [sy, sx],
            "flipped": prepared.flipped,
        },
        "settings": key.settings,
        "peaks": peaks(entry, labels, entry["breast_box"], prepared),
    }
    write_json(out_dir / f"{name}.json", summary)


def write_dicom_view(out_dir: Path, name: str, source: Path, entry: dict, prepared: PreparedImage, key: EntryKey,
                     image_number: int, thresholds: dict[str, float] | None) -> None:  # fmt: skip
    """The DICOM objects of a DICOM input (``correlax[dicom]``): Parametric Maps, SR, GSPS and overlays on its
    pixels, in the run's series (one per kind and study: the run is the output folder, model and settings);
    the probability of a class is its highest window probability, called at the model's ``thresholds``.
    Other inputs have no instance to reference."""
    from correlax.io.discovery import image_kind
    from correlax.report.dicom_export import SeriesPlan, stored_spacing, write_dicom_outputs

    if image_kind(source) not in ("dicom", "dicom-raw"):
        return
    labels = [str(v) for v in entry["labels"]]
    probabilities = {label: float(np.nanmax(entry["window_prediction"][c])) for c, label in enumerate(labels)}
    run_key = json.dumps([str(out_dir.resolve()), key.model, key.method, dict(key.settings)], sort_keys=True, default=str)
    write_dicom_outputs(source, {k: entry[k] for k in ("prediction", "corr_pred") if k in entry}, labels, probabilities,
                        peaks(entry, labels, entry["breast_box"], prepared), prepared.geometry, out_dir, name,
                        thresholds=thresholds, spacing=stored_spacing(prepared),
                        series=SeriesPlan(run_key, image_number))  # fmt: skip


@dataclass
class ExplainReport:
    """What a batch of ``explain`` did: files done, skipped, left to another worker, failed or passed over."""
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # already done with this model and these settings
    elsewhere: list[Path] = field(default_factory=list)  # being computed by another worker
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    passed_over: list[tuple[Path, str]] = field(default_factory=list)  # files in the folders that are no images
    explain_seconds: float = 0.0  # in the explainer (the device's work)
    wall_seconds: float = 0.0  # of the whole loop: reading, explaining, writing

    def busy_fraction(self) -> float | None:
        """The share of the loop's wall time spent explaining: what reading ahead is for."""
        return self.explain_seconds / self.wall_seconds if self.explain_seconds else None


def already_done(out_dir: Path, name: str, key: EntryKey) -> bool:
    """Whether ``out_dir`` holds the outputs of ``name`` made with this model and these settings."""
    try:
        return json.loads((out_dir / f"{name}.json").read_text()).get("key") == key.hex
    except (OSError, ValueError):
        return False


@dataclass
class Claimed:
    """An input this worker has claimed and will explain."""

    index: int
    path: Path
    name: str
    key: EntryKey
    claim: Claim


def explain_files(
    inputs: list[tuple[Path, str]],
    out_dir: Path,
    explainer: CorrelaxExplainer,
    model_key: str,
    load: Callable[[Path], PreparedImage],
    say: Callable[[str], None] = print,
    dicom: bool = False,
    prefetch_depth: int = 1,
    thresholds: dict[str, float] | None = None,
) -> ExplainReport:
    """Explain each (file, name) not done yet with this model and these settings. A file that fails is
    logged and listed; the batch goes on. The claim of a failed file is kept until the end, so that
    other workers of the same run do not try it again. The next ``prefetch_depth`` claimed files are
    decoded and pre-processed in a thread while the current one is explained (0: one after the other).
    ``thresholds``: the model's per-label decision thresholds, for the findings the DICOM outputs report."""
    report = ExplainReport()
    store = MapStore(out_dir / STORE_DIR)
    failed_claims = []

    def claimed() -> Iterator[Claimed]:
        for i, (path, name) in enumerate(inputs, 1):
            try:
                key = EntryKey(ImageIdentity.of(path), model_key, explainer.name, explainer.settings_key())
            except OSError as exc:
                report.failures.append((str(path), f"{path}: {exc.strerror or exc}"))
                continue
            if already_done(out_dir, name, key) and store.path(key).exists():
                report.skipped.append(path)
                continue
            claim = store.claim(key)
            if claim is None:
                report.elsewhere.append(path)
                continue
            yield Claimed(i, path, name, key, claim)

    def read(c: Claimed) -> PreparedImage:
        return load(c.path)

    started_all = time.perf_counter()
    loaded = prefetch(claimed(), read, prefetch_depth) if prefetch_depth else (Loaded.of(c, read) for c in claimed())
    for item in loaded:
        c = item.item
        try:
            if item.error is not None:
                raise item.error
            prepared = item.value
            entry = store.load(c.key)
            seconds = None
            if entry is None:
                progress, started = ImageProgress(c.path.name), time.perf_counter()
                entry = explainer.entry(prepared.tensor(), prepared.breast_box, progress=progress.update)
                progress.close()
                seconds = time.perf_counter() - started
                report.explain_seconds += seconds
                store.save(c.key, entry)
            write_outputs(out_dir, c.name, c.path, c.key, store.path(c.key), entry, prepared)
            if dicom:
                write_dicom_view(out_dir, c.name, c.path, entry, prepared, c.key, c.index, thresholds)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            msg = str(exc) if str(c.path) in str(exc) else f"{c.path}: {exc}"
            log.error("%s", msg)
            report.failures.append((str(c.path), msg))
            failed_claims.append(c.claim)
            continue
        c.claim.release()
        report.done.append(c.path)
        timing = "from the map store" if seconds is None else f"{seconds:.1f} s"
        say(f"[{c.index}/{len(inputs)}] {c.name}: {timing}")
    report.wall_seconds = time.perf_counter() - started_all
    for claim in failed_claims:
        claim.release()
    return report


def check_output_folder(out_dir: Path) -> None:
    """Fail before any compute when ``out_dir`` cannot hold the outputs (a file, or not writable)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / OUTPUT_MARKER).touch()  # later searches of a folder holding this one pass it over
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write the outputs there ({exc.strerror or exc})") from exc


def run_explain(
    inputs: Iterable[str | Path],
    out_dir: Path,
    checkpoint: Path,
    settings: CorrelaxSettings,
    run: RunSettings | None = None,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    spacing: float | None = None,
    max_pixels: int = MAX_PIXELS,
    say: Callable[[str], None] = print,
    dicom: bool = False,
    prefetch: int = 1,
) -> ExplainReport:
    """The whole ``correlax explain`` run. Lightning Fabric starts ``devices × num_nodes`` processes; every
    process walks the whole list and claims images one at a time, so the work spreads as images finish.
    The returned report (on rank 0) lists every rank's failures. ``spacing`` (mm) stands in for files that
    state none (PNG, PGM), for models that resample to a pixel spacing; an image over ``max_pixels`` (read from
    its header) fails by name before it is decoded. ``prefetch``: images read ahead while one is explained."""
    from lightning.fabric import Fabric

    from correlax.models import load_checkpoint
    from correlax.preprocess import load_prepared

    if devices < 1 or num_nodes < 1:
        raise InputError(f"--devices and --num-nodes must be at least 1, got {devices} and {num_nodes}")
    if prefetch < 0:
        raise InputError(f"--prefetch must be 0 (off) or more images, got {prefetch}")
    check_output_folder(out_dir)
    remove_stale_temporaries(out_dir)
    files, passed_over = collect_inputs(inputs, exclude=[out_dir])
    world = devices * num_nodes
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp" if world > 1 else "auto")
    fabric.launch()
    model, info = load_checkpoint(checkpoint, map_location=fabric.device)
    model_key = model_digest(model, info.preprocess_settings.to_dict())
    report = explain_files(
        files, out_dir, CorrelaxExplainer(model, settings, run=run), model_key,
        lambda path: load_prepared(path, info.preprocess_settings, spacing, max_pixels), say, dicom, prefetch,
        info.thresholds,
    )  # fmt: skip
    report.passed_over = passed_over
    if fabric.world_size > 1:
        report.failures = gather_failures(fabric, out_dir, report.failures)
    return report


def gather_failures(fabric, out_dir: Path, failures: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every rank's failures, on rank 0 (each file once); other ranks get their own."""
    rank_file = out_dir / f".failures-rank{fabric.global_rank}.json"
    atomic_write_text(rank_file, json.dumps(failures))
    fabric.barrier()
    if fabric.global_rank == 0:
        merged: dict[str, str] = {}
        for r in range(fabric.world_size):
            part = out_dir / f".failures-rank{r}.json"
            merged.update({p: m for p, m in json.loads(part.read_text())})
        fabric.barrier()
        for r in range(fabric.world_size):
            (out_dir / f".failures-rank{r}.json").unlink(missing_ok=True)
        return list(merged.items())
    fabric.barrier()
    return failures
