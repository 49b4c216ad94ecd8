"""Raster readers: PNG (8/16 bit) and PGM through OpenCV, TIFF through tifffile; sizes from headers via Pillow."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from correlax.io.image import MAX_PIXELS, ImageReadError, Mammogram, check_pixel_count

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")


def raster_shape(path: str | Path) -> tuple[int, int]:
    """(rows, columns) from the file's header, decoding no pixels (tifffile for TIFF, Pillow's lazy open else).

    Raises:
        ImageReadError: the header cannot be read, or Pillow refuses the size as a decompression bomb
            (above about 179 million pixels).
    """
    path = Path(path)
    if _is_tiff(path):
        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
        return int(shape[0]), int(shape[1])
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image too large: {exc}") from exc


def read_raster(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> Mammogram:
    """Read a PNG, PGM/PPM or TIFF file as a greyscale :class:`Mammogram` (no spacing known).

    The size is checked against ``max_pixels`` from the header before decoding.
    """
    path = Path(path)
    rows, columns = raster_shape(path)
    check_pixel_count(path, rows, columns, 1, max_pixels)
    if _is_tiff(path):
        arr = tifffile.imread(path, key=0)
    else:
        # imdecode on the raw bytes: cv2.imread cannot open some non-ASCII paths and says nothing.
        arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.size == 0:
        raise ImageReadError(path, "not a readable PNG, PGM or TIFF image")
    arr = _to_gray(arr, path)
    return Mammogram(pixels=arr, path=path, bits=8 * arr.dtype.itemsize)


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _to_gray(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        # Equal channel weights: OpenCV (BGR) and tifffile (RGB) order channels differently.
        grey = arr[:, :, :3].astype(np.float32).mean(axis=2)
        arr = np.round(grey).astype(arr.dtype) if arr.dtype.kind in "ui" else grey
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D greyscale image, got shape {arr.shape}")
    return arr
