"""``correlax explain`` as a library call: image files in, per-image maps and outputs in one folder.

The maps go to the map store ``OUT/maps`` (:mod:`correlax.pipelines.map_store`); the files of each input and
their names are :mod:`correlax.pipelines.explain_outputs`. A rerun skips an input only when its outputs are
complete and its JSON names the same store entry, that is the same file, model, preparation and method
settings; missing outputs are made from the stored maps, a damaged entry is computed again. Concurrent runs
and ranks claim images one by one, so each image is computed once; a run that ends while another worker still
makes some of its images lists them (:attr:`ExplainReport.elsewhere`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from correlax.explain.explainer import CorrelaxExplainer
from correlax.explain.settings import CorrelaxSettings, RunSettings
from correlax.fileio import atomic_write_text, remove_stale_temporaries
from correlax.io import MAX_PIXELS, OUTPUT_MARKER, find_images
from correlax.models.model_file import ModelFile
from correlax.pipelines.claims import Claim
from correlax.pipelines.explain_outputs import (
    STORE_DIR,
    Claimed,
    DicomRequest,
    output_names,
    outputs_complete,
    write_outputs,
)
from correlax.pipelines.map_store import EntryKey, ImageIdentity, MapStore, ModelKey, model_digest, preparation
from correlax.pipelines.prefetch import Loaded, prefetch
from correlax.pipelines.progress import ImageProgress
from correlax.preprocess import PreparedImage

log = logging.getLogger(__name__)

__all__ = ["STORE_DIR", "ExplainJob", "ExplainReport", "InputError", "collect_inputs", "explain_files", "run_explain"]


class InputError(ValueError):
    """The inputs cannot be explained at all (an empty folder, an output folder given as input, …)."""


def collect_inputs(
    paths: Iterable[str | Path], out_dir: Path | None = None
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """(file, output name) for every input, and the files passed over with why. Files are taken as given;
    folders are searched (:func:`correlax.io.find_images`), never inside ``out_dir``. A file's natural name is
    its path relative to the folder it was found in (or its stem when given as a file), without the suffix;
    :func:`~correlax.pipelines.explain_outputs.output_names` makes it safe, distinct and stable in ``out_dir``.
    Raises NoImagesFound for a folder without any image file, InputError for a file inside ``out_dir``."""
    excluded = [] if out_dir is None else [Path(out_dir).resolve()]
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
    return output_names(list(first.values()), out_dir), skipped


@dataclass
class ExplainReport:
    """What a batch of ``explain`` did: files explained, completed, skipped, left to another worker, failed
    or passed over."""
    done: list[Path] = field(default_factory=list)  # explained now
    completed: list[Path] = field(default_factory=list)  # missing outputs made from the stored maps
    skipped: list[Path] = field(default_factory=list)  # already done with this model and these settings
    elsewhere: list[tuple[Path, EntryKey]] = field(default_factory=list)  # left to another worker, still being made
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message)
    repaired: list[str] = field(default_factory=list)  # damaged store entries found (and computed again)
    passed_over: list[tuple[Path, str]] = field(default_factory=list)  # files in the folders that are no images
    explain_seconds: float = 0.0  # in the explainer (the device's work)
    wall_seconds: float = 0.0  # of the whole loop: reading, explaining, writing

    def busy_fraction(self) -> float | None:
        """The share of the loop's wall time spent explaining: what reading ahead is for."""
        return self.explain_seconds / self.wall_seconds if self.explain_seconds else None


def explain_files(
    inputs: list[tuple[Path, str]],
    out_dir: Path,
    explainer: CorrelaxExplainer,
    model_key: ModelKey,
    load: Callable[[Path], PreparedImage],
    say: Callable[[str], None] = print,
    dicom: DicomRequest | None = None,
    prefetch_depth: int = 1,
) -> ExplainReport:
    """Explain each (file, name) not done yet with this model, preparation and these settings. A file that
    fails is logged and listed; the batch goes on. The claim of a failed file is kept until the end, so that
    other workers of the same run do not try it again. The next ``prefetch_depth`` claimed files are
    decoded and pre-processed in a thread while the current one is explained (0: one after the other).
    Images claimed by another worker are looked at once more at the end: taken over when that worker gave
    them up, else listed in ``elsewhere``. ``dicom``: also the DICOM objects of DICOM inputs, findings called
    at its thresholds."""
    run = _ExplainRun(out_dir, explainer, model_key, load, say, dicom, prefetch_depth, len(inputs),
                      MapStore(out_dir / STORE_DIR))  # fmt: skip
    started = time.perf_counter()
    left = run.explain(list(enumerate(inputs, 1)))
    if left:
        left = run.explain([item for item, _ in left])
    run.report.elsewhere = [(path, key) for (_, (path, _)), key in left]
    run.report.wall_seconds = time.perf_counter() - started
    for claim in run.failed_claims:
        claim.release()
    run.report.repaired = [str(d) for d in run.store.damaged]
    return run.report


@dataclass
class _ExplainRun:
    """The state of one :func:`explain_files` call across its passes."""

    out_dir: Path
    explainer: CorrelaxExplainer
    model_key: ModelKey
    load: Callable[[Path], PreparedImage]
    say: Callable[[str], None]
    dicom: DicomRequest | None
    prefetch_depth: int
    total: int
    store: MapStore
    report: ExplainReport = field(default_factory=ExplainReport)
    failed_claims: list[Claim] = field(default_factory=list)

    def claimed(self, inputs: list[tuple[int, tuple[Path, str]]], left: list) -> Iterator[Claimed]:
        """The inputs this worker claims; those done are counted, those another worker holds go to ``left``."""
        for i, (path, name) in inputs:
            try:
                key = self.model_key.entry(ImageIdentity.of(path), self.explainer)
            except OSError as exc:
                self.report.failures.append((str(path), f"{path}: {exc.strerror or exc}"))
                continue
            if outputs_complete(self.out_dir, name, key, self.store, self.dicom is not None):
                self.report.skipped.append(path)
                continue
            claim = self.store.claim(key)
            if claim is None:
                left.append(((i, (path, name)), key))
                continue
            yield Claimed(i, path, name, key, claim)

    def explain(self, inputs: list[tuple[int, tuple[Path, str]]]) -> list:
        """One pass over (index, (path, name)); returns those another worker holds, with their keys."""
        left: list = []

        def read(c: Claimed) -> PreparedImage:
            return self.load(c.path)

        claimed = self.claimed(inputs, left)
        depth = self.prefetch_depth
        for item in prefetch(claimed, read, depth) if depth else (Loaded.of(c, read) for c in claimed):
            c = item.item
            try:
                seconds = self.outputs(c, item)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                msg = str(exc) if str(c.path) in str(exc) else f"{c.path}: {exc}"
                log.error("%s", msg)
                self.report.failures.append((str(c.path), msg))
                self.failed_claims.append(c.claim)
                continue
            c.claim.release()
            (self.report.completed if seconds is None else self.report.done).append(c.path)
            timing = "outputs made from the map store" if seconds is None else f"{seconds:.1f} s"
            self.say(f"[{c.index}/{self.total}] {c.name}: {timing}")
        return left

    def outputs(self, c: Claimed, item: Loaded) -> float | None:
        """Write the outputs of a claimed image, computing its entry unless the store has a sound one; returns
        the seconds spent explaining (None: the stored maps were used)."""
        if item.error is not None:
            raise item.error
        prepared = item.value
        entry = self.store.load(c.key)
        seconds = None
        if entry is None:
            progress, started = ImageProgress(c.path.name), time.perf_counter()
            entry = self.explainer.entry(prepared.tensor(), prepared.breast_box, progress=progress.update)
            progress.close()
            seconds = time.perf_counter() - started
            self.report.explain_seconds += seconds
            self.store.save(c.key, entry)
        write_outputs(self.out_dir, c, self.store.path(c.key), entry, prepared, self.dicom)
        return seconds


def check_output_folder(out_dir: Path) -> None:
    """Fail before any compute when ``out_dir`` cannot hold the outputs (a file, or not writable)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / OUTPUT_MARKER).touch()  # later searches of a folder holding this one pass it over
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write the outputs there ({exc.strerror or exc})") from exc


@dataclass(frozen=True)
class ExplainJob:
    """One ``correlax explain`` run.

    Lightning Fabric starts ``devices × num_nodes`` processes. ``spacing`` (mm) stands in for files that state
    none (PNG, PGM), for models that resample to a pixel spacing; an image over ``max_pixels`` (read from its
    header) fails by name before it is decoded. ``dicom``: also the DICOM objects of DICOM inputs.
    ``prefetch``: images read ahead while one is explained."""

    inputs: tuple[Path, ...]
    out_dir: Path
    checkpoint: Path | ModelFile  # a correlax checkpoint, or a ModelFile (your own model and its labels)
    settings: CorrelaxSettings
    run: RunSettings | None = None
    devices: int = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    spacing: float | None = None
    max_pixels: int = MAX_PIXELS
    dicom: bool = False
    prefetch: int = 1


def run_explain(job: ExplainJob, say: Callable[[str], None] = print) -> ExplainReport:
    """The whole ``correlax explain`` run. Every process walks the whole list and claims images one at a time,
    so the work spreads as images finish. The returned report (on rank 0) lists every rank's failures."""
    from lightning.fabric import Fabric

    from correlax.models import load_checkpoint
    from correlax.preprocess import load_prepared

    if job.devices < 1 or job.num_nodes < 1:
        raise InputError(f"--devices and --num-nodes must be at least 1, got {job.devices} and {job.num_nodes}")
    if job.prefetch < 0:
        raise InputError(f"--prefetch must be 0 (off) or more images, got {job.prefetch}")
    out_dir = Path(job.out_dir)
    check_output_folder(out_dir)
    remove_stale_temporaries(out_dir)
    files, passed_over = collect_inputs(job.inputs, out_dir)
    world = job.devices * job.num_nodes
    fabric = Fabric(accelerator=job.accelerator, devices=job.devices, num_nodes=job.num_nodes,
                    strategy="ddp" if world > 1 else "auto")  # fmt: skip
    fabric.launch()
    model, info = load_checkpoint(job.checkpoint, map_location=fabric.device)
    preprocess = info.preprocess_settings
    model_key = ModelKey(model_digest(model, preprocess.to_dict()), preparation(preprocess.to_dict(), job.spacing))
    report = explain_files(
        files, out_dir, CorrelaxExplainer(model, job.settings, run=job.run), model_key,
        lambda path: load_prepared(path, preprocess, job.spacing, job.max_pixels), say,
        DicomRequest(info.thresholds) if job.dicom else None, job.prefetch,
    )  # fmt: skip
    report.passed_over = passed_over
    if fabric.world_size > 1:
        report.failures = gather_failures(fabric, out_dir, report.failures)
        store = MapStore(out_dir / STORE_DIR)  # after the barrier every rank's claims are released
        report.elsewhere = [(path, key) for path, key in report.elsewhere if store.is_claimed(key)]
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
