"""Reading from a PACS over DIMSE (C-FIND to list a study, C-GET to fetch it), with pynetdicom.

A DIMSE address is written ``dicom://AET@host:port`` (the PACS's AE title, host and DICOM port); correlax calls
as :data:`CALLING_AET`, which the PACS must know. Needs ``correlax[pacs]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from correlax.io.pacs import IMAGE_CLASSES, PacsError, images_of, save_dataset

CALLING_AET = "CORRELAX"
TIMEOUT_S = 30  # to connect, and for each answer
ADDRESS = re.compile(r"^dicom://(?P<aet>[^@/]{1,16})@(?P<host>[^:/]+):(?P<port>\d+)/?$")
PENDING = (0xFF00, 0xFF01)


@dataclass(frozen=True)
class DimseAddress:
    """A PACS's DIMSE address, from ``dicom://AET@host:port``."""

    url: str
    aet: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> DimseAddress:
        match = ADDRESS.match(url)
        if not match:
            raise PacsError(f"{url}: not a DIMSE address (expected dicom://AET@host:port)")
        return cls(url, match["aet"], match["host"], int(match["port"]))


def is_dimse(url: str) -> bool:
    """Whether ``url`` names a DIMSE address (``dicom://…``) rather than a DICOMweb root."""
    return url.startswith("dicom://")


@contextmanager
def association(address: DimseAddress, contexts: list, doing: str, roles: list = (), handlers: list = ()) -> Iterator:
    """An association with the PACS proposing ``contexts`` (pynetdicom presentation contexts), released after;
    a :class:`PacsError` naming the address when it cannot be made."""
    from pynetdicom import AE

    ae = AE(ae_title=CALLING_AET)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = TIMEOUT_S
    ae.requested_contexts = contexts
    assoc = ae.associate(address.host, address.port, ae_title=address.aet, ext_neg=list(roles), evt_handlers=list(handlers))
    if not assoc.is_established:
        why = "association rejected" if assoc.is_rejected else "no association (server unreachable or aborted)"
        raise PacsError(f"{address.url}: cannot {doing}: {why}")
    try:
        yield assoc
    finally:
        assoc.release()


def status_of(status: Dataset | None) -> int | None:
    """The DIMSE status code of an answer (None: no answer within the timeout, or the association broke)."""
    return int(status.Status) if status is not None and "Status" in status else None


def study_images(address: DimseAddress, study_uid: str) -> list[tuple[str, str]]:
    """(Series Instance UID, SOP Instance UID) of every image of the study (:func:`images_of`), from C-FIND."""
    from pynetdicom import build_context
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = query.SOPInstanceUID = query.SOPClassUID = ""
    found = []
    with association(address, [build_context(FIND)], f"search study {study_uid}") as assoc:
        for status, identifier in assoc.send_c_find(query, FIND):
            code = status_of(status)
            if code in PENDING and identifier is not None:
                found.append(tuple(str(identifier.get(k, "")) or None for k in ("SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")))
            elif code != 0:
                raise PacsError(f"{address.url}: search of study {study_uid} failed (C-FIND status {_hex(code)})")
    return images_of(address.url, study_uid, found)


def fetch_study(url: str, study_uid: str, folder: Path) -> list[Path]:
    """Fetch every image of the study into ``folder/<SOP Instance UID>.dcm`` with C-GET (what is there already is
    not fetched again; each file is written atomically). Returns the images' files."""
    from pynetdicom import build_context, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    address = DimseAddress.parse(url)
    images = [(series, Path(folder) / f"{sop}.dcm") for series, sop in study_images(address, study_uid)]
    missing = [(series, path) for series, path in images if not path.exists()]
    if not missing:
        return [path for _, path in images]

    def store(event) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        save_dataset(Path(folder) / f"{dataset.SOPInstanceUID}.dcm", dataset)
        return 0x0000

    contexts = [build_context(GET), *(build_context(c) for c in sorted(IMAGE_CLASSES))]
    roles = [build_role(c, scp_role=True) for c in sorted(IMAGE_CLASSES)]
    with association(address, contexts, f"fetch study {study_uid}", roles, [(evt.EVT_C_STORE, store)]) as assoc:
        for series_uid, path in missing:
            query = Dataset()
            query.QueryRetrieveLevel = "IMAGE"
            query.StudyInstanceUID, query.SeriesInstanceUID, query.SOPInstanceUID = study_uid, series_uid, path.stem
            final = None
            for status, _ in assoc.send_c_get(query, GET):
                final = status_of(status)
            if final != 0 or not path.exists():
                raise PacsError(f"{url}: fetch of instance {path.stem} of study {study_uid} failed "
                                f"(C-GET status {_hex(final)})")  # fmt: skip
    return [path for _, path in images]


def _hex(code: int | None) -> str:
    return "none: no answer" if code is None else f"0x{code:04X}"
