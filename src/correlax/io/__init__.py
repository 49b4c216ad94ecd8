"""Readers for mammograms: DICOM, PNG, TIFF, PGM, all returning :class:`Mammogram`; image discovery in folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from correlax.io.dicom import dicom_shape, read_dicom, read_dicom_header
from correlax.io.discovery import OUTPUT_MARKER, NoImagesFound, find_images, known_image_kind
from correlax.io.image import MAX_PIXELS, ImageReadError, Mammogram, errors_named
from correlax.io.raster import raster_shape, read_raster

__all__ = [
    "MAX_PIXELS",
    "ImageReadError",
    "Mammogram",
    "NoImagesFound",
    "OUTPUT_MARKER",
    "find_images",
    "image_size",
    "read_dicom",
    "read_image",
    "read_raster",
]


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> Mammogram:
    """Read a mammogram from DICOM, PNG (8/16 bit), TIFF or PGM, chosen by content, not by name.

    DICOM pixels get the Modality LUT, then the VOI LUT or window when present, and MONOCHROME1 is
    inverted; the result keeps its 12/16-bit range (uint16 or float32) until an explicit conversion
    such as :func:`correlax.preprocess.to_uint8`. Pixel spacing, laterality and view come from the
    DICOM header when present (raster files carry none). A DICOM file without the 128-byte preamble
    is accepted when its name ends in ``.dcm``/``.dicom`` or has no suffix. An image whose header
    declares more than ``max_pixels`` pixels (rows x columns x frames) is refused before decoding.

    Raises:
        ImageReadError: whose message names the file and the cause, for any failure: a missing file,
            a file that is not an image, one too large, a truncated DICOM, one without pixel data, a
            compressed transfer syntax whose decoder plugin is not installed, a multi-frame / colour
            DICOM, a window of width 0, stored values beyond BitsStored, NaN or infinite pixels, or
            any other exception of the decoders (chained as the cause).
    """
    path = Path(path)
    with errors_named(path, "cannot decode image"):
        kind = known_image_kind(path)
        if kind == "raster":
            mammogram = read_raster(path, max_pixels=max_pixels)
        else:
            mammogram = read_dicom(path, force=kind == "dicom-raw", max_pixels=max_pixels)
    if mammogram.pixels.dtype.kind == "f" and not np.isfinite(mammogram.pixels).all():
        raise ImageReadError(path, "pixels include NaN or infinite values")
    return mammogram


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file from its header alone (nothing decoded).

    Raises:
        ImageReadError: naming the file, when it is not a readable image header.
    """
    path = Path(path)
    with errors_named(path, "cannot read the image header"):
        kind = known_image_kind(path)
        if kind == "raster":
            return raster_shape(path)
        rows, columns, _ = dicom_shape(read_dicom_header(path, force=kind == "dicom-raw"))
    if not rows or not columns:
        raise ImageReadError(path, "DICOM header states no Rows/Columns")
    return rows, columns
