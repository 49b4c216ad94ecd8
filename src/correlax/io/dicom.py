"""DICOM reader: pixel data → Modality LUT → VOI LUT / window → MONOCHROME1 inverted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from correlax.io.image import ImageReadError, Mammogram

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_VIEW_MEANINGS = {"cranio-caudal": "CC", "medio-lateral oblique": "MLO", "medio-lateral": "ML",
                  "latero-medial": "LM", "exaggerated cranio-caudal": "XCCL"}


def read_dicom(path: str | Path, *, force: bool = False, voi: bool = True) -> Mammogram:
    """Read one single-frame greyscale DICOM in display orientation (see :func:`correlax.io.read_image`).

    ``force`` reads files without the DICM preamble; ``voi=False`` skips the VOI LUT / window.
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(path, force=force)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises assorted errors on damaged headers
        raise ImageReadError(path, f"damaged or truncated DICOM ({type(exc).__name__}: {exc})") from exc
    if force and "Rows" not in ds:
        raise ImageReadError(path, "not a DICOM file (no DICM preamble and no image header)")
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise ImageReadError(path, "DICOM file has no pixel data (absent, or the file ends before it)")
    if int(ds.get("SamplesPerPixel", 1)) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise ImageReadError(path, "only single-frame greyscale DICOM images are supported")
    syntax = _transfer_syntax(ds)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # missing decoder plugin, truncated or corrupt pixel data
        cause = f"cannot decode pixel data (transfer syntax {syntax.name}): {exc}"
        raise ImageReadError(path, cause) from exc
    return Mammogram(
        pixels=_display_pixels(arr, ds, voi),
        path=path,
        spacing=_spacing(ds),
        laterality=_laterality(ds),
        view=_view(ds),
        bits=int(ds.get("BitsStored", arr.dtype.itemsize * 8)),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
    )


def _transfer_syntax(ds: Dataset) -> UID:
    """The file's syntax; for a raw data set without file meta, the encoding pydicom detected."""
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        explicit = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else explicit
    return ds.file_meta.TransferSyntaxUID


def _display_pixels(arr: np.ndarray, ds: Dataset, voi: bool) -> np.ndarray:
    out = apply_modality_lut(arr, ds)
    if voi:
        out = apply_voi_lut(out, ds)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        # Mirror within the image's own range: keeps the dynamic range, higher = brighter after.
        out = out.max() - out.astype(np.float64) + out.min()
    return _compact(out, arr.dtype)


def _compact(arr: np.ndarray, stored: np.dtype) -> np.ndarray:
    """The stored unsigned type (else uint16) when the values fit it losslessly, otherwise float32."""
    target = np.dtype(stored) if np.dtype(stored).kind == "u" else np.dtype(np.uint16)
    fits = arr.size and arr.min() >= 0 and arr.max() <= np.iinfo(target).max
    if fits and (arr.dtype.kind in "ui" or np.array_equal(arr, np.round(arr))):
        return arr.astype(target)
    return arr.astype(np.float32)


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) mm: Pixel Spacing when stated, else the detector's Imager Pixel Spacing."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return row, col
    return None


def _laterality(ds: Dataset) -> str | None:
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "")).strip().upper()
        if value in ("L", "R"):
            return value
    return None


def _view(ds: Dataset) -> str | None:
    value = str(ds.get("ViewPosition", "")).strip().upper()
    if value:
        return value
    codes = ds.get("ViewCodeSequence")
    if codes:
        return _VIEW_MEANINGS.get(str(codes[0].get("CodeMeaning", "")).strip().lower())
    return None
