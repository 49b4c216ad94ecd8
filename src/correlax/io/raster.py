"""Raster readers: PNG (8/16 bit) and PGM through OpenCV, TIFF through tifffile."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile

from correlax.io.image import ImageReadError, Mammogram


def read_raster(path: str | Path) -> Mammogram:
    """Read a PNG, PGM/PPM or TIFF file as a greyscale :class:`Mammogram` (no spacing known)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff") or _is_tiff(path):
            arr = tifffile.imread(path, key=0)
        else:
            # imdecode on the raw bytes: cv2.imread cannot open some non-ASCII paths and says nothing.
            arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception as exc:
        raise ImageReadError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from exc
    if arr is None or arr.size == 0:
        raise ImageReadError(path, "not a readable PNG, PGM or TIFF image")
    arr = _to_gray(arr, path)
    return Mammogram(pixels=arr, path=path, bits=8 * arr.dtype.itemsize)


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*")


def _to_gray(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        # Equal channel weights: OpenCV (BGR) and tifffile (RGB) order channels differently.
        grey = arr[:, :, :3].astype(np.float32).mean(axis=2)
        arr = np.round(grey).astype(arr.dtype) if arr.dtype.kind in "ui" else grey
    if arr.ndim != 2:
        raise ImageReadError(path, f"expected a 2-D greyscale image, got shape {arr.shape}")
    return arr
