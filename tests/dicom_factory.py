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
