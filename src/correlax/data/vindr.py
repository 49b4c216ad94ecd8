"""VinDr-Mammo adapter: the two annotation CSVs plus ``images/<study_id>/<image_id>.dicom`` → :class:`Manifest`.

- one record per row of ``breast-level_annotations.csv``; patient id = study_id (one exam per woman);
- ``finding_annotations.csv``: one Finding per category of each box (categories merged onto the
  shared labels by :data:`~correlax.data.validate.VINDR_CATEGORIES`), boxes clipped to the image
  size given by the ``height``/``width`` columns, with a warning;
- split: the official ``training``/``test`` column as ``train``/``test`` (carve ``val`` out of train
  with :func:`correlax.data.split.patient_split`);
- pixel spacing from each DICOM header (header only), never assumed; a header whose Rows/Columns
  disagree with the tables' ``height``/``width`` is warned about.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from correlax.data.csvfile import read_rows
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.data.validate import OUTSIDE_ROOT_HINT, Problems, add_finding, canonical_label, outside_root, row_box
from correlax.io.dicom import dicom_shape, read_dicom_header

log = logging.getLogger(__name__)

BREAST_CSV = "breast-level_annotations.csv"
FINDING_CSV = "finding_annotations.csv"
SPLITS = {"training": "train", "train": "train", "test": "test"}
_IMAGE_COLUMNS = ("study_id", "image_id", "laterality", "view_position", "height", "width")
_FINDING_COLUMNS = ("finding_categories", "xmin", "ymin", "xmax", "ymax")


def parse_categories(text: str) -> list[str]:
    """``"['Mass', 'Suspicious Calcification']"`` → ``['Mass', 'Suspicious Calcification']`` (a bare name works too)."""
    text = text.strip()
    if not text.startswith("["):
        return [text] if text else []
    value = ast.literal_eval(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not a list of category names: {text!r}")
    return value


def read_header(path: Path) -> tuple[tuple[float, float] | None, tuple[int, int] | None]:
    """(pixel spacing (row, column) in mm, (rows, columns)) from a DICOM header; None for what is absent or
    unreadable (logged: the image reader names the file properly when the image is used)."""
    try:
        ds = read_dicom_header(path)
        value = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        spacing = (float(value[0]), float(value[1])) if value else None
        rows, columns, _ = dicom_shape(ds)
    except Exception as e:  # noqa: BLE001
        log.warning("%s: DICOM header not readable (%s)", path, e)
        return None, None
    return spacing, ((rows, columns) if rows and columns else None)


def load_vindr(root: str | Path, read_headers: bool = True, allow_outside_root: bool = False) -> Manifest:
    """Read VinDr-Mammo (or a data set in its layout) at ``root``.

    A study or image id that leads outside ``root/images`` (``../x``) is a problem unless ``allow_outside_root``.

    Images that are not on disk are logged, dropped and listed in ``Manifest.missing``. Unknown
    categories, bad boxes, duplicate image ids and unreadable sizes raise one
    :class:`~correlax.data.validate.ManifestError` naming each file and line. ``read_headers``
    reads each DICOM's pixel spacing and size (header only; about a millisecond per file).
    """
    root = Path(root)
    problems = Problems()
    breast_csv, finding_csv = root / BREAST_CSV, root / FINDING_CSV
    records: dict[str, ImageRecord] = {}
    sizes: dict[str, tuple[int, int]] = {}
    first_line: dict[str, int] = {}

    def image_record(where: Path, line: int, row: dict[str, str]) -> ImageRecord | None:
        image_id = row["image_id"]
        try:
            sizes[image_id] = (int(float(row["height"])), int(float(row["width"])))
        except ValueError:
            problems.add(
                where, line, f"image {image_id}: height/width not numbers ({row['height']!r}, {row['width']!r})"
            )
            return None
        inner = f"{row['study_id']}/{image_id}.dicom"
        if not allow_outside_root and outside_root(inner, root / "images"):
            problems.add(where, line, f"image {image_id}: images/{inner} lies outside {root / 'images'}; {OUTSIDE_ROOT_HINT}")
            return None
        split = SPLITS.get(row.get("split", "").lower())
        if row.get("split") and split is None:
            problems.add(where, line, f"image {image_id}: unknown split {row['split']!r} (expected training/test)")
        return ImageRecord(
            image_id=image_id,
            path=f"images/{inner}",
            patient_id=row["study_id"],
            laterality=row["laterality"] or None,
            view=row["view_position"] or None,
            split=split,
        )

    for line, row in read_rows(breast_csv, _IMAGE_COLUMNS, problems):
        image_id = row["image_id"]
        if image_id in first_line:
            problems.add(breast_csv, line, f"duplicate image id {image_id} (first on line {first_line[image_id]})")
            continue
        first_line[image_id] = line
        record = image_record(breast_csv, line, row)
        if record is not None:
            records[image_id] = record

    for line, row in read_rows(finding_csv, _IMAGE_COLUMNS + _FINDING_COLUMNS, problems):
        image_id = row["image_id"]
        if image_id not in records:
            if image_id in first_line:
                continue  # its breast-level row was already reported
            record = image_record(finding_csv, line, row)
            if record is None:
                continue
            records[image_id] = record
            first_line[image_id] = line
        _add_findings(records[image_id], row, sizes[image_id], finding_csv, line, problems)

    problems.raise_if_any()
    manifest = Manifest(records=[], root=root.resolve(), source="vindr-mammo")
    for record in records.values():
        _drop_redundant_no_finding(record)
        path = root / record.path
        if not path.is_file():
            manifest.missing.append(record.path)
            continue
        if read_headers:
            record.spacing, shape = read_header(path)
            if shape and shape != sizes[record.image_id]:
                log.warning(
                    "%s: Rows x Columns %d x %d in the header, but height x width %d x %d in the tables; "
                    "the boxes were checked against the tables", path, *shape, *sizes[record.image_id],
                )
        manifest.records.append(record)
    if manifest.missing:
        log.warning(
            "%d image(s) listed in %s are missing under %s and were left out, e.g. %s",
            len(manifest.missing),
            breast_csv,
            root,
            manifest.missing[0],
        )
    return manifest


def _add_findings(
    record: ImageRecord, row: dict[str, str], size: tuple[int, int], where: Path, line: int, problems: Problems
) -> None:
    try:
        labels = [canonical_label(c) for c in parse_categories(row.get("finding_categories", ""))]
    except (ValueError, SyntaxError) as e:
        problems.add(where, line, f"image {record.image_id}: {e}")
        return
    valid, box = row_box(row, size, str(where), problems, line)
    if not valid:
        return
    for label in dict.fromkeys(labels):  # several categories that merge into one label give one finding
        add_finding(record, Finding(label, None if label == "no_finding" else box), where, line)


def _drop_redundant_no_finding(record: ImageRecord) -> None:
    """Keep a single no_finding entry, and none when the image has real findings."""
    real = [f for f in record.findings if f.label != "no_finding"]
    record.findings = real or [Finding("no_finding")]
