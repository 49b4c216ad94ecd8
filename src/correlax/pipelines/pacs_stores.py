"""Storing one DICOM object to a PACS: STOW-RS (``http(s)://`` DICOMweb root) or C-STORE (``dicom://AET@host:port``).

``store(dataset)`` returns None when the server accepted the object, or the server's reason for refusing that
object alone; a failed exchange (unreachable server, HTTP error, rejected association) raises a
:class:`correlax.io.pacs.PacsError`: the next object would fail the same way.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from correlax.io.dicomweb import connect, network_errors
from correlax.io.dimse import TIMEOUT_S, DimseAddress, association, is_dimse, status_of
from correlax.io.pacs import PacsError

C_STORE_WARNINGS = (0xB000, 0xB006, 0xB007)  # stored, with coercion or elements discarded


class DicomwebStore:
    """STOW-RS, one object per request; an object listed in the answer's Failed SOP Sequence is refused."""

    def __init__(self, url: str):
        self.url = url
        self.client = connect(url)

    def store(self, dataset: Dataset, name: str) -> str | None:
        with network_errors(self.url, f"store {name}"):
            answer = self.client.store_instances([dataset])
        failed = [i for i in answer.get("FailedSOPSequence", []) if i.get("ReferencedSOPInstanceUID") == dataset.SOPInstanceUID]
        return f"failure reason {failed[0].get('FailureReason', 'not given')}" if failed else None


class DimseStore:
    """One association per object, proposing exactly its SOP class and transfer syntax."""

    def __init__(self, url: str):
        self.address = DimseAddress.parse(url)

    def store(self, dataset: Dataset, name: str) -> str | None:
        from pynetdicom import build_context

        context = build_context(dataset.SOPClassUID, dataset.file_meta.TransferSyntaxUID)
        with association(self.address, [context], f"store {name}") as assoc:
            code = status_of(assoc.send_c_store(dataset))
        if code is None:
            raise PacsError(f"{self.address.url}: store {name} refused: no C-STORE status (the server closed or "
                            f"aborted the association, or gave no answer within {TIMEOUT_S} s)")  # fmt: skip
        return None if code == 0 or code in C_STORE_WARNINGS else f"C-STORE status 0x{code:04X}"


def open_store(url: str) -> DicomwebStore | DimseStore:
    """The store for ``url``: C-STORE for ``dicom://AET@host:port``, STOW-RS for a DICOMweb root."""
    return DimseStore(url) if is_dimse(url) else DicomwebStore(url)
