"""DICOM reader: pixel data → Modality LUT → VOI LUT / window → MONOCHROME1 inverted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from correlax.io.image import MAX_PIXELS, ImageReadError, Mammogram, check_pixel_count

_DEFER_BYTES = 1 << 20
_COUNT_SLICE = 1 << 20  # pixels counted at a time
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_VIEW_MEANINGS = {"cranio-caudal": "CC", "medio-lateral oblique": "MLO", "medio-lateral": "ML",
                  "latero-medial": "LM", "exaggerated cranio-caudal": "XCCL"}


def read_dicom(path: str | Path, *, force: bool = False, voi: bool = True, max_pixels: int = MAX_PIXELS) -> Mammogram:
    """Read one single-frame greyscale DICOM in display orientation (see :func:`correlax.io.read_image`).

    ``force`` reads files without the DICM preamble; ``voi=False`` skips the VOI LUT / window. Rows x
    Columns x frames is checked against ``max_pixels`` before the pixel data is read or decompressed.
    """
    path = Path(path)
    try:
        # Large elements (the pixel data) are read only when used, after the size check.
        ds = pydicom.dcmread(path, force=force, defer_size=_DEFER_BYTES)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises assorted errors on damaged headers
        raise ImageReadError(path, f"damaged or truncated DICOM ({type(exc).__name__}: {exc})") from exc
    if force and "Rows" not in ds:
        raise ImageReadError(path, "not a DICOM file (no DICM preamble and no image header)")
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise ImageReadError(path, "DICOM file has no pixel data (absent, or the file ends before it)")
    rows, columns, frames = dicom_shape(ds)
    check_pixel_count(path, rows, columns, frames, max_pixels)
    if int(ds.get("SamplesPerPixel", 1)) != 1 or frames != 1:
        raise ImageReadError(path, "only single-frame greyscale DICOM images are supported")
    if voi:
        _check_window(path, ds)
    syntax = _transfer_syntax(ds)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # missing decoder plugin, truncated or corrupt pixel data
        cause = f"cannot decode pixel data (transfer syntax {syntax.name}): {exc}"
        raise ImageReadError(path, cause) from exc
    _check_bits_stored(path, ds, syntax)
    for tag in _PIXEL_TAGS:  # the encoded bytes are no longer needed: free them before the display copy
        if tag in ds:
            delattr(ds, tag)
    return Mammogram(
        pixels=_display_pixels(arr, ds, voi),
        path=path,
        spacing=_spacing(ds),
        laterality=_laterality(ds),
        view=_view(ds),
        bits=int(ds.get("BitsStored", arr.dtype.itemsize * 8)),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
    )


def dicom_shape(ds: Dataset) -> tuple[int, int, int]:
    """(rows, columns, frames) that the header declares; missing values count as 0 rows/columns, 1 frame."""
    return int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0), int(ds.get("NumberOfFrames", 1) or 1)


def read_dicom_header(path: str | Path, *, force: bool = True) -> Dataset:
    """The header of a DICOM file without its pixel data (about a millisecond)."""
    return pydicom.dcmread(path, stop_before_pixels=True, force=force)


def _check_bits_stored(path: Path, ds: Dataset, syntax: UID) -> None:
    """Refuse unsigned uncompressed pixel data with values above what BitsStored allows.

    pydicom masks such values to BitsStored bits, which garbles the image; the only legitimate case,
    overlay planes kept in the unused high bits (retired DICOM), is let through masked.
    """
    stored, allocated = int(ds.get("BitsStored", 0) or 0), int(ds.get("BitsAllocated", 0) or 0)
    if syntax.is_compressed or allocated not in (8, 16, 32) or not 0 < stored < allocated:
        return
    if int(ds.get("PixelRepresentation", 0)) != 0 or any(_is_overlay_bit_position(e.tag) for e in ds):
        return
    dtype = np.dtype(f"u{allocated // 8}").newbyteorder("<" if syntax.is_little_endian else ">")
    raw = np.frombuffer(ds.PixelData, dtype=dtype, count=len(ds.PixelData) // dtype.itemsize)
    top = int(raw.max()) if raw.size else 0
    if top >> stored:
        raise ImageReadError(
            path,
            f"BitsStored (0028,0101) is {stored} but stored values reach {top} (above {2**stored - 1}): "
            "the header contradicts the pixel data, and masking the high bits would garble the image",
        )


def _is_overlay_bit_position(tag: BaseTag) -> bool:
    return tag.group & 0xFF00 == 0x6000 and tag.element == 0x0102


def _check_window(path: Path, ds: Dataset) -> None:
    """A window the VOI step would use must have a width of at least 1 (a VOI LUT Sequence takes precedence)."""
    if "VOILUTSequence" in ds or "WindowWidth" not in ds:
        return
    widths = ds.WindowWidth
    width = float(widths[0] if isinstance(widths, MultiValue) else widths)
    if not width >= 1:
        raise ImageReadError(path, f"WindowWidth (0028,1051) is {width:g}; a window must be at least 1 wide")


def _transfer_syntax(ds: Dataset) -> UID:
    """The file's syntax; for a raw data set without file meta, the encoding pydicom detected."""
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        explicit = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else explicit
    return ds.file_meta.TransferSyntaxUID


def _display_pixels(arr: np.ndarray, ds: Dataset, voi: bool) -> np.ndarray:
    """Modality LUT → VOI LUT / window → MONOCHROME1 mirrored, as the stored type when lossless, else float32.

    Each step maps one stored value to one display value, so integer data of up to 16 bits goes through a
    table of its value range (pydicom's own functions applied to the table): the same numbers, without
    float64 copies of the whole image.
    """
    if arr.dtype.kind not in "ui" or arr.dtype.itemsize > 2 or not arr.size:
        return _compact(_mirrored(_display_values(arr, ds, voi), ds), arr.dtype)
    lo, hi = int(arr.min()), int(arr.max())
    offsets = arr if lo == 0 else arr - lo if arr.dtype.kind == "u" else arr.astype(np.int32) - lo
    present = _values_present(offsets, hi - lo + 1)
    table = _display_values(np.arange(lo, hi + 1, dtype=arr.dtype), ds, voi)
    return _compact(_mirrored(table, ds, present), arr.dtype, present)[offsets]


def _display_values(values: np.ndarray, ds: Dataset, voi: bool) -> np.ndarray:
    out = apply_modality_lut(values, ds)
    return apply_voi_lut(out, ds) if voi else out


def _mirrored(values: np.ndarray, ds: Dataset, present: np.ndarray | None = None) -> np.ndarray:
    """MONOCHROME1 mirrored within the image's own range (the values where ``present``): keeps the dynamic
    range, higher = brighter after. Other images unchanged."""
    if ds.get("PhotometricInterpretation") != "MONOCHROME1":
        return values
    held = values if present is None else values[present]
    return held.max() - values.astype(np.float64) + held.min()


def _values_present(offsets: np.ndarray, count: int) -> np.ndarray:
    """(count,) bool: which of 0..count-1 occur in ``offsets``, counted a slice at a time (bincount's int64
    copy of a whole image would cost 8 bytes per pixel)."""
    present = np.zeros(count, bool)
    flat = offsets.reshape(-1)
    for start in range(0, flat.size, _COUNT_SLICE):
        present |= np.bincount(flat[start : start + _COUNT_SLICE], minlength=count) > 0
    return present


def _compact(arr: np.ndarray, stored: np.dtype, present: np.ndarray | None = None) -> np.ndarray:
    """The stored unsigned type (else uint16) when the values (those where ``present``) fit it losslessly,
    otherwise float32."""
    target = np.dtype(stored) if np.dtype(stored).kind == "u" else np.dtype(np.uint16)
    held = arr if present is None else arr[present]
    fits = held.size and held.min() >= 0 and held.max() <= np.iinfo(target).max
    if fits and (held.dtype.kind in "ui" or np.array_equal(held, np.round(held))):
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
