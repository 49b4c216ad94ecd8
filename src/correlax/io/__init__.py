"""Readers for mammograms: DICOM, PNG, TIFF, PGM, all returning :class:`Mammogram`."""

from __future__ import annotations

from pathlib import Path

from correlax.io.dicom import read_dicom
from correlax.io.image import ImageReadError, Mammogram
from correlax.io.raster import read_raster

__all__ = ["ImageReadError", "Mammogram", "read_dicom", "read_image", "read_raster"]

_RASTER_MAGIC = (b"\x89PNG", b"II*\x00", b"MM\x00*", b"P2", b"P5")
_DICOM_SUFFIXES = {".dcm", ".dicom", ""}


def read_image(path: str | Path) -> Mammogram:
    """Read a mammogram from DICOM, PNG (8/16 bit), TIFF or PGM, chosen by content, not by name.

    DICOM pixels get the Modality LUT, then the VOI LUT or window when present, and MONOCHROME1 is
    inverted; the result keeps its 12/16-bit range (uint16 or float32) until an explicit conversion
    such as :func:`correlax.preprocess.to_uint8`. Pixel spacing, laterality and view come from the
    DICOM header when present (raster files carry none). A DICOM file without the 128-byte preamble
    is accepted when its name ends in ``.dcm``/``.dicom`` or has no suffix.

    Raises:
        ImageReadError: whose message names the file and the cause, for a missing file, a file that
            is not an image, a truncated DICOM, a DICOM without pixel data, a compressed transfer
            syntax whose decoder plugin is not installed, or a multi-frame / colour DICOM.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc)) from exc
    if head[128:132] == b"DICM":
        return read_dicom(path)
    if head.startswith(_RASTER_MAGIC):
        return read_raster(path)
    if path.suffix.lower() in _DICOM_SUFFIXES and head:
        return read_dicom(path, force=True)
    raise ImageReadError(path, "not a recognised image (expected DICOM, PNG, TIFF or PGM)")
