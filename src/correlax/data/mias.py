"""mini-MIAS adapter: ``Info.txt`` plus ``mdbNNN.pgm`` / ``.png`` images → :class:`Manifest`.

Format facts this relies on (data-formats.md, and the notes inside Info.txt):
- data rows are ``REFNUM BG CLASS [SEVERITY X Y RADIUS]``; everything else in the file is header text;
- Y counts from the BOTTOM edge, so the row index is ``height - 1 - Y``;
- rows without coordinates (``*NOTE 3*`` calcifications, one CIRC) are image-level labels;
- files come in pairs of one woman: odd number and the next even number; even = left, odd = right.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.data.validate import Problems, add_finding, checked_box
from correlax.io import ImageReadError, image_size

log = logging.getLogger(__name__)

SPACING_MM = (0.2, 0.2)
CLASS_LABELS = {
    "NORM": "no_finding",
    "CALC": "calcification",
    "CIRC": "mass",
    "SPIC": "mass",
    "MISC": "mass",
    "ARCH": "architectural_distortion",
    "ASYM": "asymmetry",
}
_ROW = re.compile(r"^(mdb(\d{3}))\s+(\S+)\s+(\S+)(.*)$")
_SUFFIXES = (".pgm", ".png", ".PGM", ".PNG")


def parse_circle(rest: str) -> tuple[float, float, float] | None:
    """(x, y, radius) from the text after CLASS (``SEVERITY X Y RADIUS``), or None when it holds no coordinates.

    Text without numbers (``*NOTE 3*``) means an image-level label; one or two numbers is an error.
    """
    tokens = rest.split()
    if tokens and tokens[0] in ("B", "M"):
        tokens = tokens[1:]
    numbers = []
    for token in tokens:
        try:
            numbers.append(float(token))
        except ValueError:
            pass
    if not numbers:
        return None
    if len(numbers) != 3 or len(tokens) != 3:
        raise ValueError(f"expected SEVERITY X Y RADIUS, got {rest.strip()!r}")
    return numbers[0], numbers[1], numbers[2]


def lesion_box(x: float, y_from_bottom: float, radius: float, height: int) -> tuple[float, float, float, float]:
    """The box (xmin, ymin, xmax, ymax, image rows counted from the top) of a MIAS circle."""
    row = height - 1 - y_from_bottom
    return (x - radius, row - radius, x + radius, row + radius)


def patient_of(number: int) -> str:
    """Patient id shared by a woman's two films: the odd number of the pair (mdb001 for mdb001 and mdb002)."""
    return f"mdb{number - 1 + number % 2:03d}"


def laterality_of(number: int) -> str:
    """Info.txt note 1: even file numbers are left breasts, odd numbers right."""
    return "L" if number % 2 == 0 else "R"


def find_image(root: Path, ref: str) -> Path | None:
    """The image file of ``ref`` under ``root`` or ``root/images``, as .pgm or .png, or None."""
    for folder in (root / "images", root):
        for suffix in _SUFFIXES:
            candidate = folder / f"{ref}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_mias(root: str | Path, info: str | Path | None = None) -> Manifest:
    """Read mini-MIAS at ``root`` (``Info.txt`` and the images) into a manifest with ``split=None``.

    ``info`` overrides the Info.txt location. Images listed but not on disk are logged and listed
    in ``Manifest.missing``; malformed rows, unknown classes and impossible boxes raise one
    :class:`~correlax.data.validate.ManifestError` naming each line.
    """
    root = Path(root)
    info_path = Path(info) if info is not None else root / "Info.txt"
    try:
        lines = info_path.read_text(errors="replace").splitlines()
    except OSError as e:
        raise FileNotFoundError(f"{info_path}: cannot read the mini-MIAS Info.txt ({e.strerror})") from e

    problems = Problems()
    records: dict[str, ImageRecord] = {}
    sizes: dict[str, tuple[int, int]] = {}
    missing: list[str] = []
    for line_no, line in enumerate(lines, start=1):
        match = _ROW.match(line.strip())
        if not match:
            continue  # header and notes
        ref, number, _background, cls, rest = match.group(1), int(match.group(2)), *match.group(3, 4, 5)
        label = CLASS_LABELS.get(cls.upper())
        if label is None:
            problems.add(
                info_path, line_no, f"{ref}: unknown abnormality class {cls!r}; known: {', '.join(CLASS_LABELS)}"
            )
            continue
        if ref in missing:
            continue
        if ref not in records:
            path = find_image(root, ref)
            if path is None:
                log.warning("%s:%d: %s is listed but no %s.pgm/.png is under %s", info_path, line_no, ref, ref, root)
                missing.append(ref)
                continue
            try:
                sizes[ref] = image_size(path)
            except ImageReadError as e:
                problems.add(info_path, line_no, f"{ref}: image not readable ({e})")
                continue
            records[ref] = ImageRecord(
                image_id=ref,
                path=path.relative_to(root).as_posix(),
                patient_id=patient_of(number),
                laterality=laterality_of(number),
                view="MLO",
                split=None,
                spacing=SPACING_MM,
            )
        try:
            circle = parse_circle(rest)
        except ValueError as e:
            problems.add(info_path, line_no, f"{ref}: {e}")
            continue
        box = None
        if circle is not None and label != "no_finding":
            box = checked_box(lesion_box(*circle, sizes[ref][0]), sizes[ref], str(info_path), problems, line_no)
            if box is None:
                continue
        add_finding(records[ref], Finding(label, box), info_path, line_no)

    if not records and not missing:
        problems.add(info_path, None, "no 'mdbNNN ...' rows found")
    problems.raise_if_any()
    if missing:
        log.warning("%d image(s) listed in %s are missing on disk: %s", len(missing), info_path, ", ".join(missing))
    return Manifest(records=list(records.values()), root=root.resolve(), source="mini-mias", missing=missing)
