"""Raster readers: PNG (8/16 bit) and PGM through OpenCV, TIFF through tifffile; sizes from headers via Pillow."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import PngImagePlugin, PpmImagePlugin

from correlax.io.image import MAX_PIXELS, ImageReadError, Mammogram, check_pixel_count

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
# Pillow's format classes read the header only, and without Image.open's own bound (about 179 MP), so that
# the caller's max_pixels decides and says so.
_HEADER_READERS = {b"\x89PNG": PngImagePlugin.PngImageFile, b"P2": PpmImagePlugin.PpmImageFile, b"P5": PpmImagePlugin.PpmImageFile}


def raster_shape(path: str | Path) -> tuple[int, int]:
    """(rows, columns) from the header of a TIFF (tifffile), PNG or PGM (Pillow) file; no pixel is decoded."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic in _TIFF_MAGIC:
        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
        return int(shape[0]), int(shape[1])
    reader = next((cls for start, cls in _HEADER_READERS.items() if magic.startswith(start)), None)
    if reader is None:
        raise ImageReadError(path, "not a PNG, PGM or TIFF file")
    with reader(path) as im:
        return im.height, im.width


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
