"""A PACS around ``correlax explain``: fetch a study before explaining it, store the DICOM outputs after.

A PACS is given by its DICOMweb root (``http(s)://…``: QIDO-RS, WADO-RS, STOW-RS) or its DIMSE address
(``dicom://AET@host:port``: C-FIND, C-GET, C-STORE).

The fetched instances go to ``OUT/from-pacs/<Study Instance UID>/``. Every instance the server accepted is
recorded in the ledger ``OUT/sent-to-pacs.jsonl`` (one JSON line each: server URL, SOP Instance UID, file),
so that a rerun stores only what was not stored yet; outputs always stay in ``OUT``. Needs ``correlax[pacs]``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from correlax.io import dicomweb, dimse
from correlax.io.pacs import PacsError
from correlax.pipelines.pacs_stores import open_store

FETCH_DIR = "from-pacs"
LEDGER = "sent-to-pacs.jsonl"
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def fetch_inputs(url: str, study_uid: str, out_dir: Path) -> Path:
    """Fetch the study into ``out_dir/from-pacs/<study>/`` (what is there already is kept) and return that folder."""
    if not UID.match(study_uid) or len(study_uid) > 64:
        raise PacsError(f"study {study_uid!r}: not a DICOM UID (digits and dots, at most 64 characters)")
    folder = Path(out_dir) / FETCH_DIR / study_uid
    (dimse if dimse.is_dimse(url) else dicomweb).fetch_study(url, study_uid, folder)
    return folder


class SentLedger:
    """What was stored where, appended one line per instance (a line cut short by a kill is ignored)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def sent(self, url: str) -> set[str]:
        """SOP Instance UIDs the server at ``url`` accepted."""
        uids = set()
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return uids
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("url") == url:
                uids.add(entry.get("sop_instance_uid"))
        return uids

    def record(self, url: str, sop_uid: str, file: str) -> None:
        line = json.dumps({"url": url, "sop_instance_uid": sop_uid, "file": file}) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


@dataclass
class SendReport:
    """What a send did: objects stored now, stored by an earlier run, and refused."""

    sent: list[Path] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)  # stored by an earlier run
    failures: list[str] = field(default_factory=list)  # one line per object the server refused or that is unreadable


def dicom_outputs(out_dir: Path) -> list[Path]:
    """The DICOM objects ``correlax explain --dicom`` wrote in ``out_dir`` (not the fetched sources)."""
    out_dir = Path(out_dir)
    return sorted(
        p for p in out_dir.rglob("*.dcm")
        if p.relative_to(out_dir).parts[0] != FETCH_DIR and not any(s.startswith(".") for s in p.relative_to(out_dir).parts)
    )  # fmt: skip


def send_outputs(url: str, out_dir: Path) -> SendReport:
    """Store every DICOM output in ``out_dir`` that the ledger does not list for ``url``, one request per object
    (:mod:`correlax.pipelines.pacs_stores`), recording each as the server accepts it. An object the server's
    answer refuses, or an unreadable file, is listed and the others go on; a failed exchange (unreachable server,
    HTTP error, rejected association) stops with a :class:`PacsError` that says how many were stored: the rest stay in ``out_dir`` for a rerun."""
    url = url.rstrip("/")
    ledger = SentLedger(Path(out_dir) / LEDGER)
    stored = ledger.sent(url)
    server = open_store(url)
    report = SendReport()
    files = dicom_outputs(out_dir)
    for path in files:
        try:
            dataset = pydicom.dcmread(path)
            sop_uid = str(dataset.SOPInstanceUID)
        except Exception as exc:  # noqa: BLE001 - pydicom raises assorted errors on damaged files
            report.failures.append(f"{path}: cannot be read as DICOM ({type(exc).__name__}: {exc})")
            continue
        if sop_uid in stored:
            report.already.append(path)
            continue
        try:
            refused = server.store(dataset, path.name)
        except PacsError as exc:
            done = len(report.sent) + len(report.already)
            raise PacsError(f"{exc}; {done} of {len(files)} DICOM outputs stored, the rest stay in {out_dir} "
                            "and a rerun with --send stores them") from exc  # fmt: skip
        if refused:
            report.failures.append(f"{path}: {url} refused it ({refused})")
            continue
        ledger.record(url, sop_uid, path.relative_to(out_dir).as_posix())
        report.sent.append(path)
    return report
