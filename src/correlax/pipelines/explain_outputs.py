"""The layout of a ``correlax explain`` output folder: output names, the files of one image, when it is done.

For each input, ``OUT/<name>.npz`` (the store entry: maps and window-grid values), ``OUT/<name>_<label>.png``
(overlays), with ``--dicom`` the DICOM objects of a DICOM input, and ``OUT/<name>.json`` (source, key, peaks,
and the list of the other outputs; written last). An image is done only when its JSON names the same store
entry and every output asked for exists.

Names (:func:`output_names`) depend on the file and on what ``OUT`` already holds, never on the other files
of the run: a file keeps the name it was given in ``OUT`` before, and a name that ``OUT`` (or an earlier input
of the run) gives another file gets a short digest of the file's resolved path (``1-1-3f2a9c01``).
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from correlax.evaluation.pointing_game import peak_in_box
from correlax.fileio import atomic_write_bytes, temporary_name, write_json
from correlax.pipelines.claims import Claim
from correlax.pipelines.map_store import EntryKey, MapStore
from correlax.preprocess import PreparedImage

PEAK_MAPS = ("prediction", "corr_pred", "rise")  # per class; corr_dist and relax are single maps
STORE_DIR = "maps"


@dataclass
class Claimed:
    """An input a worker has claimed and will explain: its number in the run, file, output name and key."""

    index: int
    path: Path
    name: str
    key: EntryKey
    claim: Claim


@dataclass(frozen=True)
class DicomRequest:
    """``--dicom``: the DICOM objects of DICOM inputs, findings called at the model's ``thresholds``."""

    thresholds: Mapping[str, float] | None = None


def summary_files(out_dir: Path) -> list[Path]:
    """The ``<name>.json`` of every explained image (names may hold folders); not the map store's files."""
    store = out_dir / STORE_DIR
    return sorted(p for p in out_dir.rglob("*.json") if store not in p.parents and not p.name.startswith("."))


def named_sources(out_dir: Path) -> dict[str, str]:
    """{output name: resolved source path} of the outputs ``out_dir`` holds."""
    named = {}
    for summary in summary_files(out_dir) if out_dir.is_dir() else []:
        try:
            data = json.loads(summary.read_text())
            source = data["input"]["path"] if "input" in data else str(Path(data["source"]).resolve())
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an output of explain
        named[summary.relative_to(out_dir).with_suffix("").as_posix()] = source
    return named


def safe_name(name: str) -> str:
    """Only [A-Za-z0-9._-/], no '..' or absolute part."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", part) for part in name.split("/") if part not in ("", ".", "..")]
    return "/".join(parts) or "image"


def output_names(inputs: Sequence[tuple[Path, str]], out_dir: Path | None = None) -> list[tuple[Path, str]]:
    """Safe, distinct output names for (file, natural name) pairs that do not depend on the other inputs: a
    file keeps its name in ``out_dir``; a name taken by another file gets a digest of this file's path."""
    known = named_sources(out_dir) if out_dir is not None else {}
    named_before = {source: name for name, source in known.items()}
    taken = {name.lower(): source for name, source in known.items()}
    out = []
    for path, natural in inputs:
        source = str(Path(path).resolve())
        name = named_before.get(source)
        if name is None:
            name = safe_name(natural)
            if taken.get(name.lower(), source) != source:
                name = f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
        taken[name.lower()] = source
        out.append((path, name))
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
    if target.exists() and os.path.samefile(source, target):
        return  # already that file: rename() of two links to one file would do nothing and leave the temporary
    tmp = temporary_name(target, ".link")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def write_dicom_view(out_dir: Path, image: Claimed, entry: dict, prepared: PreparedImage,
                     request: DicomRequest) -> list[Path]:  # fmt: skip
    """The DICOM objects of a DICOM input (``correlax[dicom]``): Parametric Maps, SR, GSPS and overlays on its
    pixels, in the run's series (one per kind and study: the run is the output folder, model and settings);
    the probability of a class is its highest window probability, called at the model's thresholds.
    Other inputs have no instance to reference (none written)."""
    from correlax.io.discovery import image_kind
    from correlax.report.dicom_export import SeriesPlan, stored_spacing, write_dicom_outputs

    if image_kind(image.path) not in ("dicom", "dicom-raw"):
        return []
    key = image.key
    labels = [str(v) for v in entry["labels"]]
    probabilities = {label: float(np.nanmax(entry["window_prediction"][c])) for c, label in enumerate(labels)}
    run_key = json.dumps([str(out_dir.resolve()), key.model, key.method, dict(key.settings)], sort_keys=True, default=str)
    return write_dicom_outputs(image.path, {k: entry[k] for k in ("prediction", "corr_pred") if k in entry}, labels,
                               probabilities, peaks(entry, labels, entry["breast_box"], prepared), prepared.geometry,
                               out_dir, image.name, thresholds=request.thresholds, spacing=stored_spacing(prepared),
                               series=SeriesPlan(run_key, image.index))  # fmt: skip


def write_outputs(out_dir: Path, image: Claimed, entry_path: Path, entry: dict, prepared: PreparedImage,
                  dicom: DicomRequest | None = None) -> None:  # fmt: skip
    """Every output of one image from its entry; the JSON last, listing the others, so that an image whose
    outputs were cut short (a failed DICOM export, a killed run) is not taken for done."""
    from correlax.report.overlays import overlay_png

    name, source, key = image.name, image.path, image.key
    labels = [str(v) for v in entry["labels"]]
    link_or_copy(entry_path, out_dir / f"{name}.npz")
    grey = prepared.image[..., 0]
    overlays = []
    for c, label in enumerate(labels):
        correlation = entry["corr_pred"][c] if "corr_pred" in entry else None  # an entry made without masks has none
        png = overlay_png(grey, entry["prediction"][c], correlation, label, source.name)
        atomic_write_bytes(out_dir / f"{name}_{label}.png", png)
        overlays.append(f"{name}_{label}.png")
    outputs: dict = {"maps": f"{name}.npz", "overlays": overlays}
    if dicom is not None:
        written = write_dicom_view(out_dir, image, entry, prepared, dicom)
        outputs["dicom"] = [p.relative_to(out_dir).as_posix() for p in written]
    sy, sx = prepared.spacing or (None, None)
    summary = {
        "source": str(source),
        "input": vars(key.image),
        "key": key.hex,
        "maps": entry_path.relative_to(out_dir).as_posix(),
        "outputs": outputs,
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


def outputs_complete(out_dir: Path, name: str, key: EntryKey, store: MapStore, dicom: bool) -> bool:
    """Whether ``<name>.json`` names this key's entry, that entry is sound, ``<name>.npz`` is it, and every
    output asked for (overlays; with ``dicom`` the DICOM objects) exists."""
    try:
        summary = json.loads((out_dir / f"{name}.json").read_text())
        outputs = summary["outputs"] if summary.get("key") == key.hex else None
        files = [outputs["maps"], *outputs["overlays"], *(outputs["dicom"] if dicom else [])]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not all((out_dir / f).is_file() for f in files) or store.load(key) is None:
        return False
    view, entry = out_dir / outputs["maps"], store.path(key)
    return os.path.samefile(view, entry) or filecmp.cmp(view, entry, shallow=False)
