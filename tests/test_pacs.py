"""``correlax explain --from URL --study UID --send URL`` against a real PACS: Orthanc with its DICOMweb plugin,
started on 127.0.0.1 (tests/orthanc.py). A synthetic study goes in through Orthanc's own REST API; what correlax
stored is read back through QIDO-RS and Orthanc's REST API; bad servers and studies give one line each."""

from __future__ import annotations

import contextlib
import io
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.uid import ComprehensiveSRStorage, GrayscaleSoftcopyPresentationStateStorage, ParametricMapStorage, generate_uid

import orthanc
from dicom_factory import write_dicom
from headless import CHROMIUM, HeadlessPage

pytest.importorskip("highdicom")
pytest.importorskip("dicomweb_client")
pytestmark = pytest.mark.skipif(bool(orthanc.missing()), reason=orthanc.missing() or "")  # .ci/run installs Orthanc

from correlax.cli.main import main  # noqa: E402
from correlax.pipelines.pacs import FETCH_DIR, LEDGER, dicom_outputs  # noqa: E402
from correlax.report.dicom_series import SERIES  # noqa: E402

FAST = ["--window", "32", "--stride", "16", "--masks", "8", "--batch-size", "64"]
LABELS = ("no_finding", "mass", "calcification")
# the number of distinct grey levels on the largest canvas of the page (0 while it is blank or one flat colour)
CANVAS_DRAWN = """(() => {
  const cs = Array.from(document.querySelectorAll('canvas')).filter(c => c.width > 50 && c.height > 50);
  if (!cs.length) return 0;
  const c = cs.sort((a, b) => b.width * b.height - a.width * a.height)[0];
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const levels = new Set();
  for (let i = 0; i < d.length; i += 4 * 7) levels.add(d[i]);
  return levels.size > 1 ? levels.size : 0;
})()"""


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    server = orthanc.Orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import torch

    from correlax.models import CheckpointInfo, create_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", create_model("tiny", LABELS),
                           CheckpointInfo(labels=LABELS, backbone="tiny"))  # fmt: skip


def synthetic_study(folder, pacs: orthanc.Orthanc) -> tuple[str, list[pydicom.Dataset]]:
    """A left and a right CC view of one patient, one series each, stored in Orthanc; (study UID, datasets). The
    breasts stay 8 px off the edges: the GSPS's circles (radius 4) then stay inside the image."""
    study = generate_uid()
    rng = np.random.default_rng(0)
    sources = []
    for side in ("L", "R"):
        img = np.zeros((96, 80), np.uint8)
        cv2.ellipse(img, (30 if side == "L" else 50, 48), (22, 36), 0, 0, 360, 150, -1)
        img = np.where(img > 0, img + rng.integers(0, 60, img.shape), 0).astype(np.uint8)
        path = write_dicom(folder / f"{side}.dcm", img, laterality=side, view="CC", imager_spacing=(0.1, 0.1),
                           extra={"StudyInstanceUID": study, "PatientName": "Synthetic^Study"})  # fmt: skip
        pacs.upload(path)
        sources.append(pydicom.dcmread(path))
    return study, sources


def qido_instances(pacs: orthanc.Orthanc, study: str) -> dict[str, str]:
    """SOP Instance UID → SOP Class UID of every instance Orthanc lists for the study (QIDO-RS)."""
    request = urllib.request.Request(f"{pacs.dicomweb}/studies/{study}/instances", headers={"Accept": "application/dicom+json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        found = json.loads(r.read() or b"[]")
    return {a["00080018"]["Value"][0]: a["00080016"]["Value"][0] for a in found}


def stored_file(pacs: orthanc.Orthanc, sop_uid: str) -> pydicom.Dataset:
    """The file Orthanc holds for an instance, through its REST API."""
    request = urllib.request.Request(f"{pacs.root}/tools/lookup", data=sop_uid.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as r:
        (match,) = json.loads(r.read())
    with urllib.request.urlopen(f"{pacs.root}/instances/{match['ID']}/file", timeout=30) as r:
        return pydicom.dcmread(io.BytesIO(r.read()))


def explain(model, out, *pacs_args: str) -> list[str]:
    return ["explain", "--model", str(model), "--out", str(out), *FAST, "--dicom", *pacs_args]


@dataclass
class RoundTrip:
    study: str
    sources: list[pydicom.Dataset]
    out: Path
    first: str  # what the first run printed
    rerun: str


@pytest.fixture(scope="module")
def round_trip(pacs, model, tmp_path_factory) -> RoundTrip:
    """A synthetic study stored in Orthanc, explained with --from/--send, and the same command run again."""
    folder = tmp_path_factory.mktemp("round-trip")
    study, sources = synthetic_study(folder, pacs)
    printed = []
    for _ in range(2):
        with contextlib.redirect_stdout(io.StringIO()) as text:
            status = main(explain(model, folder / "out", "--from", pacs.dicomweb, "--study", study, "--send", pacs.dicomweb))
        assert status == 0, text.getvalue()
        printed.append(text.getvalue())
    return RoundTrip(study, sources, folder / "out", *printed)


def test_study_from_the_pacs_explained_and_stored_back(pacs, round_trip):
    study, out, text = round_trip.study, round_trip.out, round_trip.first
    assert "2 explained" in text, text
    # the fetched instances are the sources, pixel for pixel
    fetched = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in (out / FETCH_DIR / study).glob("*.dcm")}
    assert set(fetched) == {s.SOPInstanceUID for s in round_trip.sources}
    for source in round_trip.sources:
        assert np.array_equal(fetched[source.SOPInstanceUID].pixel_array, source.pixel_array)
    # every DICOM output is in the PACS, in the source's study, and is the file correlax wrote
    outputs = {pydicom.dcmread(p).SOPInstanceUID: p for p in dicom_outputs(out)}
    assert f"{len(outputs)} DICOM object(s) stored to {pacs.dicomweb}, 0 stored before" in text
    source_uids = {s.SOPInstanceUID for s in round_trip.sources}
    listed = qido_instances(pacs, study)
    assert set(listed) == set(outputs) | source_uids
    classes = [listed[uid] for uid in outputs]
    assert classes.count(ComprehensiveSRStorage) == 2 and classes.count(GrayscaleSoftcopyPresentationStateStorage) == 2
    assert classes.count(ParametricMapStorage) == 2 * 2 * len(LABELS)  # prediction and correlation map per class
    for uid, path in outputs.items():
        held, written = stored_file(pacs, uid), pydicom.dcmread(path)
        assert held.StudyInstanceUID == study and held.PatientName == "Synthetic^Study"
        if held.SOPClassUID == ParametricMapStorage:
            assert np.array_equal(held.pixel_array, written.pixel_array)
            assert held.SourceImageSequence[0].ReferencedSOPInstanceUID in source_uids
    ledger = [json.loads(line) for line in (out / LEDGER).read_text().splitlines()]
    assert sorted(e["sop_instance_uid"] for e in ledger) == sorted(outputs)
    # the rerun fetched the images only (not the outputs now in the study), explained nothing, stored nothing again
    assert "0 explained, 2 already done, 0 failed" in round_trip.rerun
    assert len(list((out / FETCH_DIR / study).glob("*.dcm"))) == 2
    assert f"0 DICOM object(s) stored to {pacs.dicomweb}, {len(outputs)} stored before" in round_trip.rerun


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.skipif(not orthanc.WEBVIEWER_PLUGIN.exists(), reason="orthanc-webviewer is not installed")
def test_orthanc_web_viewer_shows_the_stored_maps(pacs, round_trip, tmp_path):
    """Orthanc's web viewer opens a series of maps correlax stored: its canvas shows the map, not a blank."""
    series = [pacs.get_json(f"/series/{sid}") for sid in pacs.get_json("/series")]
    maps = next(s for s in series if s["MainDicomTags"].get("SeriesDescription") == SERIES["pm"].description
                and pacs.get_json(f"/studies/{s['ParentStudy']}")["MainDicomTags"]["StudyInstanceUID"] == round_trip.study)  # fmt: skip
    with HeadlessPage(tmp_path / "profile", 900, 700) as page:
        page.open(f"{pacs.root}/web-viewer/app/viewer.html?series={maps['ID']}")
        drawn = page.wait_for(CANVAS_DRAWN, timeout=60)
        shot = page.screenshot()
    cv2.imwrite(str(tmp_path / "orthanc-viewer.png"), shot)
    if os.environ.get("CORRELAX_SCREENSHOTS"):
        cv2.imwrite(str(Path(os.environ["CORRELAX_SCREENSHOTS"]) / "orthanc-viewer.png"), shot)
    assert drawn >= 16  # distinct grey levels on the viewer's canvas: a map, not a flat or blank canvas


def only_line_naming(text: str, name: str) -> str:
    lines = [line for line in text.splitlines() if name in line]
    assert len(lines) == 1, text
    return lines[0]


def test_unreachable_server_and_unknown_study_are_one_line_each(pacs, model, tmp_path, capsys):
    nobody = f"http://127.0.0.1:{orthanc.free_port()}/dicom-web"
    study = generate_uid()
    assert main(explain(model, tmp_path / "a", "--from", nobody, "--study", study)) == 2
    text = capsys.readouterr().out
    assert text.count("\n") == 1 and "cannot connect" in only_line_naming(text, nobody)
    assert main(explain(model, tmp_path / "b", "--from", pacs.dicomweb, "--study", study)) == 2
    text = capsys.readouterr().out
    line = only_line_naming(text, study)
    assert text.count("\n") == 1 and pacs.dicomweb in line and "not found" in line
    assert main(explain(model, tmp_path / "c", "--from", pacs.dicomweb, "--study", "../1.2")) == 2
    assert "not a DICOM UID" in only_line_naming(capsys.readouterr().out, "../1.2")
    assert not (tmp_path / "c" / FETCH_DIR).exists()


def send_to_a_refusing_pacs(pacs, model, tmp_path, capsys, protocol: str) -> tuple[str, str, Path]:
    """Explain a new study from ``pacs`` and send the outputs to an Orthanc refusing stores over ``protocol``
    (``"dicomweb"`` or ``"dimse"``); checks that it holds none and that all stay in --out: (line naming it, study, out)."""
    study, _ = synthetic_study(tmp_path, pacs)
    refusing = orthanc.Orthanc(tmp_path / "refusing", refuse_stores=True)
    out = tmp_path / "out"
    try:
        source, target = getattr(pacs, protocol), getattr(refusing, protocol)
        assert main(explain(model, out, "--from", source, "--study", study, "--send", target)) == 1
        line = only_line_naming(capsys.readouterr().out, target)
        assert qido_instances(refusing, study) == {}
    finally:
        refusing.stop()
    written = dicom_outputs(out)
    overlays = [p for p in written if p.name.endswith(".sc.dcm")]  # one per finding the model calls
    assert len(written) - len(overlays) == 2 * (2 + 2 * len(LABELS))  # per image: SR, GSPS, two maps per class
    assert f"0 of {len(written)} DICOM outputs stored" in line and str(out) in line, line
    return line, study, out


def test_refused_store_loses_nothing_and_a_rerun_sends_the_rest(pacs, model, tmp_path, capsys):
    line, study, out = send_to_a_refusing_pacs(pacs, model, tmp_path, capsys, "dicomweb")
    assert "HTTP 403" in line
    outputs = dicom_outputs(out)
    assert not (out / LEDGER).exists() or not (out / LEDGER).read_text().strip()
    nobody = f"http://127.0.0.1:{orthanc.free_port()}/dicom-web"
    assert main(explain(model, out, "--from", pacs.dicomweb, "--study", study, "--send", nobody)) == 1
    assert "cannot connect" in only_line_naming(capsys.readouterr().out, nobody)
    # the rerun to a server that accepts them stores every output, explaining nothing again
    assert main(explain(model, out, "--from", pacs.dicomweb, "--study", study, "--send", pacs.dicomweb)) == 0
    text = capsys.readouterr().out
    assert "0 explained, 2 already done" in text
    assert f"{len(outputs)} DICOM object(s) stored to {pacs.dicomweb}, 0 stored before" in text
    assert {pydicom.dcmread(p).SOPInstanceUID for p in outputs} <= set(qido_instances(pacs, study))


def test_send_needs_dicom_outputs_and_from_needs_a_study(model, tmp_path, capsys):
    assert main(["explain", "--model", str(model), "--out", str(tmp_path), "--send", "http://127.0.0.1:1/x", str(tmp_path)]) == 2
    assert "add --dicom" in capsys.readouterr().out
    assert main(["explain", "--model", str(model), "--out", str(tmp_path), "--from", "http://127.0.0.1:1/x"]) == 2
    assert "--study" in capsys.readouterr().out


def test_dimse_fetch_and_store_with_the_same_ledger(pacs, model, tmp_path, capsys):
    """The same round trip over DIMSE (C-FIND, C-GET, C-STORE with pynetdicom) against Orthanc's DICOM port."""
    pytest.importorskip("pynetdicom")
    study, sources = synthetic_study(tmp_path, pacs)
    out = tmp_path / "out"
    assert main(explain(model, out, "--from", pacs.dimse, "--study", study, "--send", pacs.dimse)) == 0
    text = capsys.readouterr().out
    assert "2 explained" in text, text
    fetched = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in (out / FETCH_DIR / study).glob("*.dcm")}
    assert set(fetched) == {s.SOPInstanceUID for s in sources}
    for source in sources:
        assert np.array_equal(fetched[source.SOPInstanceUID].pixel_array, source.pixel_array)
    outputs = {pydicom.dcmread(p).SOPInstanceUID for p in dicom_outputs(out)}
    assert f"{len(outputs)} DICOM object(s) stored to {pacs.dimse}, 0 stored before" in text
    assert set(qido_instances(pacs, study)) == outputs | set(fetched)
    assert main(explain(model, out, "--from", pacs.dimse, "--study", study, "--send", pacs.dimse)) == 0
    assert f"0 DICOM object(s) stored to {pacs.dimse}, {len(outputs)} stored before" in capsys.readouterr().out


def test_dimse_bad_addresses_and_refused_stores(pacs, model, tmp_path, capsys):
    pytest.importorskip("pynetdicom")
    nobody = f"dicom://ORTHANC@127.0.0.1:{orthanc.free_port()}"
    assert main(explain(model, tmp_path / "a", "--from", nobody, "--study", generate_uid())) == 2
    assert "no association" in only_line_naming(capsys.readouterr().out, nobody)
    assert main(explain(model, tmp_path / "a", "--from", "dicom://pacs", "--study", generate_uid())) == 2
    assert "not a DIMSE address" in only_line_naming(capsys.readouterr().out, "dicom://pacs")
    unknown = generate_uid()
    assert main(explain(model, tmp_path / "a", "--from", pacs.dimse, "--study", unknown)) == 2
    assert "not found" in only_line_naming(capsys.readouterr().out, unknown)
    line, _, _ = send_to_a_refusing_pacs(pacs, model, tmp_path, capsys, "dimse")
    assert "refused: no C-STORE status" in line
