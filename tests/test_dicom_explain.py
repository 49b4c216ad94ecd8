"""``correlax explain --dicom`` end to end: the model's thresholds decide the findings, the reader's spacing goes
into the maps, the images of a study share one series per kind."""

import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from correlax.preprocess import PreprocessSettings
from dicom_factory import write_mammogram

pytest.importorskip("highdicom")


def test_explain_dicom_reports_what_the_model_calls_in_the_runs_series(tmp_path):
    """A tiny untrained model whose validation thresholds call mass on every image (0) and calcification on
    none (1); two views of one study, the right MONOCHROME1 one mirrored by the canonical flip, the left one with a
    window and a VOI LUT, ImagerPixelSpacing only. The Parametric Map holds the peak's value where the JSON says
    it is."""
    import torch

    from correlax.cli.main import main
    from correlax.models import CheckpointInfo, create_model, save_checkpoint

    torch.manual_seed(0)
    labels = ("no_finding", "mass", "calcification")
    info = CheckpointInfo(labels=labels, backbone="tiny", preprocess=PreprocessSettings(canonical_flip=True).to_dict(),
                          thresholds={"no_finding": 0.0, "mass": 0.0, "calcification": 1.0})  # fmt: skip
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny", labels), info)
    study = generate_uid()
    (tmp_path / "in").mkdir()
    lut = Dataset()  # the left view has both a window and a VOI LUT Sequence (legal): its GSPS must be written
    lut.LUTDescriptor, lut.LUTData = [4096, 0, 16], np.arange(0, 65536, 16, dtype="<u2").tobytes()
    voi = {"WindowCenter": 1000, "WindowWidth": 2000, "VOILUTSequence": [lut]}
    for name, right in (("left", False), ("right", True)):
        write_mammogram(tmp_path / "in" / f"{name}.dcm", right=right, monochrome1=right, imager_spacing=(0.1, 0.1),
                        extra={"StudyInstanceUID": study, **({} if right else voi)})  # fmt: skip
    out = tmp_path / "out"
    args = ["explain", "--model", str(ckpt), "--out", str(out), str(tmp_path / "in"), "--window", "32"]
    assert main([*args, "--stride", "16", "--masks", "8", "--dicom"]) == 0

    summary = json.loads((out / "right.json").read_text())
    assert summary["grid"]["flipped"]
    source = pydicom.dcmread(tmp_path / "in" / "right.dcm")
    for label in labels:  # no resampling here: the stored map is the prepared one mirrored, value for value
        pm = pydicom.dcmread(out / f"right_prediction_{label}.pm.dcm")
        assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns)
        shared = pm.SharedFunctionalGroupsSequence[0]
        assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.1, 0.1]
        mapping = shared.RealWorldValueMappingSequence[0]
        peak = summary["peaks"]["prediction"][label]
        stored = pm.pixel_array[peak["source_y"], peak["source_x"]] * mapping.RealWorldValueSlope
        assert stored + mapping.RealWorldValueIntercept == pytest.approx(peak["value"], abs=1e-4)

    objects = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(out.glob("*.dcm"))]
    assert {p.name for p in out.glob("*.gsps.dcm")} == {"left.gsps.dcm", "right.gsps.dcm"}
    overlays = sorted(p.name for p in out.glob("*.sc.dcm"))
    assert overlays == ["left_overlay_mass.sc.dcm", "right_overlay_mass.sc.dcm"]  # mass called, calcification not
    for sr in (ds for ds in objects if ds.Modality == "SR"):
        finding_items = [c for c in _codes(sr) if c.ConceptNameCodeSequence[0].CodeValue == "121071"]  # Finding
        findings = {c.ConceptCodeSequence[0].CodeValue for c in finding_items}
        assert findings == {"4147007"}  # Mass only: never No Finding, never the uncalled calcification
    series = {}
    for ds in objects:
        series.setdefault(ds.SeriesInstanceUID, set()).add((ds.SeriesNumber, ds.SeriesDescription, ds.SOPClassUID))
    assert len(series) == 4 and all(len(v) == 1 for v in series.values())  # maps, SR, GSPS, overlays: both images
    assert len({next(iter(v))[0] for v in series.values()}) == 4


def _codes(item) -> list:
    """Every CODE content item of an SR, depth first (the finding type is one)."""
    found = [item] if item.get("ValueType") == "CODE" else []
    for child in item.get("ContentSequence", []):
        found += _codes(child)
    return found
