"""Which files are images: recognition by content, and the search of folders for mammograms."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from correlax.errors import FileProblem
from correlax.fileio import not_a_regular_file
from correlax.io.image import ImageReadError

RASTER_MAGIC = (b"\x89PNG", b"II*\x00", b"MM\x00*", b"P2", b"P5")
RAW_DICOM_SUFFIXES = {".dcm", ".dicom", ""}
OUTPUT_MARKER = ".correlax-output"  # a file with this name marks a folder of correlax outputs: never searched
FIGURE_SOFTWARE = ("matplotlib", "correlax")  # PNG 'Software' text of figures, never mammograms


class NoImagesFound(FileProblem):
    """A folder given as input holds no image file correlax can read."""


def image_kind(path: Path) -> str | None:
    """``"dicom"`` (DICM magic at byte 128), ``"raster"`` (PNG, TIFF or PGM magic), ``"dicom-raw"`` (a
    file named ``.dcm``/``.dicom`` or without suffix, possibly DICOM without preamble), or None.

    Raises:
        ImageReadError: ``path`` is not a regular file (FIFO, device, socket), which is never opened.
    """
    special = not_a_regular_file(path)
    if special and os.path.exists(path):
        raise ImageReadError(path, special)
    with open(path, "rb") as f:
        head = f.read(132)
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(RASTER_MAGIC):
        return "raster"
    if path.suffix.lower() in RAW_DICOM_SUFFIXES and head:
        return "dicom-raw"
    return None


def known_image_kind(path: Path) -> str:
    """:func:`image_kind`, or an :class:`ImageReadError` for a file that is none of them."""
    kind = image_kind(path)
    if kind is None:
        raise ImageReadError(path, "not a recognised image (expected DICOM, PNG, TIFF or PGM)")
    return kind


def find_images(paths: Iterable[str | Path], exclude: Iterable[str | Path] = ()) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The image files among ``paths``, and what was skipped with why.

    A file given by name is taken as it is (a bad one fails later, by name), unless it is no regular file
    (FIFO, device, socket): those are skipped, never opened. Folders are searched recursively, symbolic
    links to folders followed (a folder reached twice, as by a link loop, is searched once); a file counts
    as an image by its content (DICOM with the DICM preamble whatever its name, PNG/TIFF/PGM magic; a
    ``.dcm``/``.dicom``/suffix-less file that may be DICOM without preamble).
    Never searched: folders in ``exclude`` (pass the output folder), folders holding an
    :data:`OUTPUT_MARKER` file, hidden folders; never taken: PNG figures written by matplotlib or
    correlax. Files are returned sorted per folder, each once.

    Raises:
        NoImagesFound: a folder given holds no image file (its message says what was skipped).
    """
    excluded = {Path(p).resolve() for p in exclude}
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if not path.is_dir():
            special = not_a_regular_file(path)
            if special:
                skipped.append((path, special))
            else:
                files.append(path)
            continue
        found, passed = _search(path, excluded)
        if not found:
            raise NoImagesFound(path, _nothing_found(passed))
        files += found
        skipped += passed
    unique: dict[Path, Path] = {}  # resolved path -> the first spelling given
    for file in files:
        unique.setdefault(file.resolve(), file)
    return list(unique.values()), skipped


def _search(folder: Path, excluded: set[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    searched: dict[Path, Path] = {}  # real path of each folder searched -> how it was first reached
    for root, dirs, names in os.walk(folder, followlinks=True):
        here = Path(root)
        real = here.resolve()
        if real in searched:  # a link loop, or a second link to one folder
            skipped.append((here, f"the same folder as {searched[real]} (a symbolic link), already searched"))
            dirs.clear()
            continue
        searched[real] = here
        if real in excluded or OUTPUT_MARKER in names:
            skipped.append((here, "a folder of correlax outputs"))
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            file = here / name
            reason = _not_an_input(file)
            if reason:
                skipped.append((file, reason))
            else:
                found.append(file)
    return found, skipped


def _not_an_input(file: Path) -> str | None:
    """Why ``file`` is not a mammogram to read, or None when it may be one."""
    if file.name.startswith("."):
        return "hidden file"
    special = not_a_regular_file(file)
    if special:
        return special
    try:
        kind = image_kind(file)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror or exc})"
    if kind is None:
        return "not a DICOM, PNG, TIFF or PGM file"
    if kind == "raster" and _is_figure(file):
        return "a figure (correlax or matplotlib output), not a mammogram"
    return None


def _is_figure(file: Path) -> bool:
    try:
        with Image.open(file) as im:
            software = str(im.info.get("Software", "")).lower()
    except Exception:  # noqa: BLE001 -- an unreadable file is reported by the reader, by name
        return False
    return software.startswith(FIGURE_SOFTWARE)


def _nothing_found(skipped: list[tuple[Path, str]]) -> str:
    if not skipped:
        return "no image file found: the folder is empty"
    shown = "; ".join(f"{path.name}: {why}" for path, why in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f"no DICOM, PNG, TIFF or PGM file found ({len(skipped)} skipped: {shown}{more})"
