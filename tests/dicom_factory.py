"""Write small test DICOMs with pydicom (shared by the test modules; import as a plain module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    spacing: tuple[float, float] | None = None,
    imager_spacing: tuple[float, float] | None = None,
    laterality: str | None = None,
    view: str | None = None,
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    with_pixels: bool = True,
    extra: dict | None = None,
) -> Path:
    """Write a single-frame greyscale mammography DICOM and return its path.

    ``pixels`` is 2-D uint8 or uint16; ``window`` is (center, width); ``rescale`` is (slope, intercept).
    A compressed ``transfer_syntax`` (JPEG 2000 / JPEG-LS / RLE lossless) is encoded with
    ``Dataset.compress`` through the installed plugins. ``extra`` sets further keywords.
    """
    path = Path(path)
    pixels = np.ascontiguousarray(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = DigitalMammographyXRayImageStorageForPresentation
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "MG"
    ds.PatientID = "TEST"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 * pixels.dtype.itemsize
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = float(window[0]), float(window[1])
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = float(rescale[0]), float(rescale[1])
    if spacing is not None:
        ds.PixelSpacing = [float(v) for v in spacing]
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = [float(v) for v in imager_spacing]
    if laterality is not None:
        ds.ImageLaterality = laterality
    if view is not None:
        ds.ViewPosition = view
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    if with_pixels:
        ds.PixelData = pixels.tobytes()
        if UID(transfer_syntax).is_compressed:
            ds.compress(transfer_syntax, pixels)
    ds.save_as(path, enforce_file_format=True)
    return path


SPOTS = {"mass": (30, 70), "calcification": (44, 40)}  # stored (x, y) of a bright spot per class, breast on the left


def write_mammogram(
    path: str | Path, right: bool = False, monochrome1: bool = False, **kwargs
) -> dict[str, tuple[int, int]]:
    """A 12-bit 120×80 breast with a 3-px bright spot per class of :data:`SPOTS`, mirrored when ``right``,
    inverted for MONOCHROME1; Imager Pixel Spacing 0.1 mm (no Pixel Spacing: most mammography) and a Patient
    Orientation unless ``kwargs`` says otherwise (they go to :func:`write_dicom`). Returns the spots' stored (x, y)."""
    h, w = 120, 80
    yy, xx = np.mgrid[:h, :w]
    display = np.where((xx / (0.8 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2 < 1, 2000, 0)
    for x, y in SPOTS.values():
        display[y - 1 : y + 2, x - 1 : x + 2] = 4000
    spots = dict(SPOTS)
    if right:
        display = display[:, ::-1]
        spots = {label: (w - 1 - x, y) for label, (x, y) in SPOTS.items()}
    stored = 4095 - display if monochrome1 else display
    kwargs.setdefault("imager_spacing", (0.1, 0.1))
    extra = {"PatientOrientation": ["P", "L"] if right else ["A", "R"], **kwargs.pop("extra", {})}
    photometric = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    write_dicom(path, stored.astype(np.uint16), bits_stored=12, photometric=photometric,
                laterality="R" if right else "L", view="CC", extra=extra, **kwargs)  # fmt: skip
    return spots
