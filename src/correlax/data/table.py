"""Generic table adapter, for any collection: one CSV row per box → :class:`Manifest`.

Columns: ``image_path, label, xmin, ymin, xmax, ymax`` and optionally ``split, patient_id, height,
width, spacing_mm`` (pixel spacing in mm, for files that state none: PNG, PGM, TIFF). Empty box
columns make an image-level label. ``image_path`` is relative to the CSV's folder (or absolute);
the image id is that path without its suffix, so equal file names in different folders
(CBIS-DDSM's ``1-1.dcm``) stay distinct. Without ``patient_id`` each image is its own patient.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path, PurePath

from correlax.data.csvfile import read_rows
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.data.validate import OUTSIDE_ROOT_HINT, Problems, add_finding, canonical_label, outside_root, row_box
from correlax.io import ImageReadError, image_size

log = logging.getLogger(__name__)

REQUIRED = ("image_path", "label", "xmin", "ymin", "xmax", "ymax")
SPLIT_NAMES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


def load_csv(
    path: str | Path, drop_missing: bool = False, spacing: float | None = None, allow_outside_root: bool = False
) -> Manifest:
    """Read the generic table at ``path``; ``spacing`` (mm) is the pixel spacing of rows without ``spacing_mm``.

    An ``image_path`` outside the table's folder (``../x.png``, or an absolute path elsewhere) is a problem
    unless ``allow_outside_root``: a table from elsewhere must not make correlax read any file it names.

    Every problem (unknown label, inverted or empty box, box wholly outside the image, one image id
    for two files, split or patient id that differs between rows of one image, missing image) is
    collected and raised as one :class:`~correlax.data.validate.ManifestError` naming the line.
    With ``drop_missing`` a missing image is instead logged, left out and listed in ``Manifest.missing``.
    """
    path = Path(path)
    base = path.parent
    problems = Problems()
    records: dict[str, ImageRecord] = {}
    files: dict[str, tuple[str, int]] = {}  # image id -> (image_path as written, first line)
    sizes: dict[str, tuple[int, int] | None] = {}
    missing: list[str] = []
    rows = read_rows(path, REQUIRED, problems)
    problems.raise_if_any()

    for line, row in rows:
        image_path = row["image_path"]
        if not image_path:
            problems.add(path, line, "empty image_path")
            continue
        if image_path in missing:
            continue
        if not allow_outside_root and outside_root(image_path, base):
            problems.add(path, line, f"image_path {image_path} lies outside the table's folder {base.resolve()}; "
                         + OUTSIDE_ROOT_HINT)
            continue
        image_id = PurePath(image_path).with_suffix("").as_posix()
        if image_id in files and files[image_id][0] != image_path:
            problems.add(
                path,
                line,
                f"duplicate image id {image_id!r}: {image_path} and {files[image_id][0]} (line {files[image_id][1]})",
            )
            continue
        try:
            label = canonical_label(row["label"])
        except ValueError as e:
            problems.add(path, line, str(e))
            continue
        split = _split(row.get("split", ""), path, line, problems)
        patient_id = row.get("patient_id") or image_id
        row_spacing = _spacing(row.get("spacing_mm", ""), path, line, problems)

        record = records.get(image_id)
        if record is None and image_id not in files:
            files[image_id] = (image_path, line)
            file = Path(image_path) if Path(image_path).is_absolute() else base / image_path
            if not file.is_file():
                if drop_missing:
                    log.warning("%s:%d: image %s not found, left out", path, line, file)
                    missing.append(image_path)
                else:
                    problems.add(path, line, f"image file not found: {file}")
                continue
            sizes[image_id] = _size(row, file, path, line, problems)
            pitch = row_spacing or spacing
            record = records[image_id] = ImageRecord(
                image_id=image_id, path=image_path, patient_id=patient_id, split=split,
                spacing=(pitch, pitch) if pitch else None,
            )
        elif record is None:
            continue  # its first row was already reported
        else:
            if split != record.split:
                problems.add(
                    path, line, f"image {image_id}: split {split!r} differs from {record.split!r} on an earlier row"
                )
            if patient_id != record.patient_id:
                problems.add(
                    path,
                    line,
                    f"image {image_id}: patient_id {patient_id!r} differs from {record.patient_id!r} on an earlier row",
                )
            if row_spacing and (row_spacing, row_spacing) != record.spacing:
                problems.add(path, line, f"image {image_id}: spacing_mm {row_spacing:g} differs from an earlier row")

        valid, box = row_box(row, sizes[image_id], str(path), problems, line)
        if not valid:
            continue
        add_finding(record, Finding(label, box), path, line)

    problems.raise_if_any()
    if missing:
        log.warning("%d image(s) listed in %s were not found and were left out", len(missing), path)
    return Manifest(records=list(records.values()), root=base.resolve(), source=f"csv:{path.name}", missing=missing)


def _split(text: str, path: Path, line: int, problems: Problems) -> str | None:
    if not text:
        return None
    split = SPLIT_NAMES.get(text.lower())
    if split is None:
        problems.add(path, line, f"unknown split {text!r}; expected train, val or test")
    return split


def _spacing(text: str, path: Path, line: int, problems: Problems) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        problems.add(path, line, f"spacing_mm must be a positive number of millimetres, got {text!r}")
        return None
    return value


def _size(row: dict[str, str], file: Path, path: Path, line: int, problems: Problems) -> tuple[int, int] | None:
    """(height, width) from the optional columns, else from the image header; None (and a problem) if unreadable."""
    if row.get("height") and row.get("width"):
        try:
            return int(float(row["height"])), int(float(row["width"]))
        except ValueError:
            problems.add(path, line, f"height/width not numbers ({row['height']!r}, {row['width']!r})")
            return None
    try:
        return image_size(file)
    except ImageReadError as e:
        problems.add(path, line, f"image not readable: {e.cause}")
        return None
