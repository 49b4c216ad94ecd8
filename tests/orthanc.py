"""A real Orthanc PACS with its DICOMweb plugin (Debian: orthanc, orthanc-dicomweb, orthanc-webviewer), started on
127.0.0.1 on free ports with a temporary storage folder and stopped after. Import as a plain module."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).exists()), None)
PLUGINS = Path("/usr/share/orthanc/plugins")
DICOMWEB_PLUGIN = PLUGINS / "libOrthancDicomWeb.so"
WEBVIEWER_PLUGIN = PLUGINS / "libOrthancWebViewer.so"
REFUSE_POST = "function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)\n  return method ~= 'POST'\nend\n"


def missing() -> str | None:
    """Why no Orthanc with DICOMweb can be started here, or None."""
    if ORTHANC is None:
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb orthanc-webviewer)"
    if not DICOMWEB_PLUGIN.exists():
        return f"Orthanc's DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}: apt-get install orthanc-dicomweb)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc server, over HTTP (REST and DICOMweb) and DIMSE (AE title ORTHANC; correlax's AE title CORRELAX is
    a known modality that may find and get). ``refuse_stores``: a Lua filter answers every POST (so every STOW-RS)
    with HTTP 403, and CORRELAX may not store over DIMSE."""

    def __init__(self, folder: Path, refuse_stores: bool = False, timeout: float = 60.0):
        folder.mkdir(parents=True, exist_ok=True)
        self.http_port, self.dicom_port = free_port(), free_port()
        config = {
            "Name": "correlax-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": "ORTHANC",
            "DicomModalities": {"correlax": {"AET": "CORRELAX", "Host": "127.0.0.1", "Port": 104, "AllowFind": True,
                                             "AllowGet": True, "AllowStore": not refuse_stores}},
            "DicomAlwaysAllowStore": not refuse_stores,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "Plugins": [str(p) for p in (DICOMWEB_PLUGIN, WEBVIEWER_PLUGIN) if p.exists()],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }  # fmt: skip
        if refuse_stores:
            (folder / "refuse.lua").write_text(REFUSE_POST)
            config["LuaScripts"] = [str(folder / "refuse.lua")]
        (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
        self.log = folder / "orthanc.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
        self._wait(timeout)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dimse(self) -> str:
        return f"dicom://ORTHANC@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.root}/dicom-web"

    def _wait(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with status {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.root}/system", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Orthanc did not answer on {self.root} within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def get_json(self, path: str):
        with urllib.request.urlopen(f"{self.root}{path}", timeout=30) as r:
            return json.loads(r.read())

    def upload(self, file: Path) -> None:
        """Store a file through Orthanc's own REST API (not the code under test)."""
        request = urllib.request.Request(f"{self.root}/instances", data=Path(file).read_bytes(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200, r.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
