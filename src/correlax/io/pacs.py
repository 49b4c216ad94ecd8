"""What the PACS readers share: their error, and which instances of a study are images correlax explains."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom import uid as uids

from correlax.fileio import atomic_write_bytes

# reports, presentation states, maps and captures (correlax's own outputs too) are not fetched
IMAGE_CLASSES = frozenset({
    uids.DigitalMammographyXRayImageStorageForPresentation, uids.DigitalMammographyXRayImageStorageForProcessing,
    uids.DigitalXRayImageStorageForPresentation, uids.DigitalXRayImageStorageForProcessing,
    uids.ComputedRadiographyImageStorage,
})  # fmt: skip


class PacsError(Exception):
    """A PACS cannot be used: unreachable, refusing, or without what was asked for (one line, naming it)."""


def images_of(url: str, study_uid: str, instances: list[tuple[str | None, str | None, str | None]]) -> list[tuple[str, str]]:
    """(Series, SOP Instance UID) of the images among a study's (series, SOP instance, SOP class) UIDs, or a
    :class:`PacsError` saying that the study is unknown or holds no image."""
    if not instances:
        raise PacsError(f"{url}: study {study_uid} not found (the server lists no instance of it)")
    images = [(series, sop) for series, sop, sop_class in instances if series and sop and sop_class in IMAGE_CLASSES]
    if not images:
        raise PacsError(f"{url}: study {study_uid} has no mammography, digital X-ray or CR image "
                        f"({len(instances)} other instance(s))")  # fmt: skip
    return images


def save_dataset(path: Path, dataset: pydicom.Dataset) -> None:
    """Write a received instance as a DICOM file, atomically: a file that exists is whole."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    atomic_write_bytes(path, buffer.getvalue())
