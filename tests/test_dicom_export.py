"""DICOM outputs (Parametric Map, TID 1500 SR, GSPS) land on the stored pixels, flips and MONOCHROME1 included."""

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ComprehensiveSRStorage, GrayscaleSoftcopyPresentationStateStorage, ParametricMapStorage

from correlax.errors import FileProblem
from correlax.io import read_image
from correlax.preprocess import PreparedGeometry, PreprocessSettings, prepare
from dicom_factory import write_dicom

hd = pytest.importorskip("highdicom")
from correlax.report.dicom_export import write_dicom_outputs  # noqa: E402

LABELS = ("mass", "calcification")
SETTINGS = PreprocessSettings(canonical_flip=True, target_spacing=0.2)  # stored spacing 0.1: half size
SPOTS = {"mass": (30, 70), "calcification": (44, 40)}  # stored (x, y) of a bright spot per class, breast on the left


def _source(path: Path, right: bool, monochrome1: bool) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A 12-bit 120×80 breast with a 3-px bright spot per class; mirrored when ``right``; inverted for MONOCHROME1."""
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
    photometric = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    write_dicom(path, stored.astype(np.uint16), bits_stored=12, photometric=photometric, spacing=(0.1, 0.1),
                laterality="R" if right else "L", view="CC")  # fmt: skip
    return path, spots


def _fake_maps(prepared_image: np.ndarray, spots_prepared: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """A Gaussian bump per class at the given prepared-grid point (no model needed)."""
    h, w = prepared_image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    bumps = np.stack([np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0**2)) for x, y in spots_prepared.values()])
    return {"prediction": (0.9 * bumps).astype(np.float32), "corr_pred": (0.8 * bumps - 0.1).astype(np.float32)}


def _peaks(maps: dict[str, np.ndarray]) -> dict:
    out = {}
    for name, m in maps.items():
        out[name] = {}
        for c, label in enumerate(LABELS):
            y, x = np.unravel_index(int(np.argmax(m[c])), m[c].shape)
            out[name][label] = {"x": int(x), "y": int(y), "value": float(m[c][y, x])}
    return out


def _scoords(item) -> list:
    """Every SCOORD content item of an SR, depth first."""
    found = [item] if item.get("ValueType") == "SCOORD" else []
    for child in item.get("ContentSequence", []):
        found += _scoords(child)
    return found


@pytest.mark.parametrize(("right", "monochrome1"), [(False, False), (True, True), (True, False)])
def test_dicom_outputs_land_on_the_stored_pixels(tmp_path, right, monochrome1):
    path, spots = _source(tmp_path / "src.dcm", right, monochrome1)
    source = pydicom.dcmread(path)
    prepared = prepare(read_image(path), SETTINGS)
    assert prepared.flipped == right and prepared.image.shape[:2] == (60, 40)
    # where each spot is in the prepared image, found in its pixels (not through the geometry)
    grey = prepared.image[..., 0].astype(float)
    spots_prepared = {}
    for label, (x, y) in spots.items():
        px = (prepared.image.shape[1] - 1 - x // 2) if right else x // 2
        window = grey[y // 2 - 3 : y // 2 + 4, px - 3 : px + 4]
        dy, dx = np.unravel_index(int(np.argmax(window)), window.shape)
        spots_prepared[label] = (px - 3 + int(dx), y // 2 - 3 + int(dy))
    maps = _fake_maps(prepared.image, spots_prepared)
    probabilities = {"mass": 0.91, "calcification": 0.37}
    out = write_dicom_outputs(path, maps, LABELS, probabilities, _peaks(maps), prepared.geometry, tmp_path / "out", "src")
    assert len(out) == 2 * 2 + 2 and all(p.exists() for p in out)

    for name in maps:
        for label in LABELS:
            pm = pydicom.dcmread(tmp_path / "out" / f"src_{name}_{label}.pm.dcm")
            assert pm.SOPClassUID == ParametricMapStorage
            assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns) and pm.Laterality == source.ImageLaterality
            derivation = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
            assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
            mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
            values = pm.pixel_array * mapping.RealWorldValueSlope + mapping.RealWorldValueIntercept
            y, x = np.unravel_index(int(np.argmax(values)), values.shape)
            assert abs(int(x) - spots[label][0]) <= 1 and abs(int(y) - spots[label][1]) <= 1, (name, label, x, y)
            assert values.max() == pytest.approx(maps[name].max(), abs=0.05)  # bilinear between pixel centres

    sr = pydicom.dcmread(tmp_path / "out" / "src.sr.dcm")
    assert sr.SOPClassUID == ComprehensiveSRStorage
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert evidence.ReferencedSOPInstanceUID == source.SOPInstanceUID
    points = _scoords(sr)
    assert len(points) == 2 * 2
    for point in points:
        x, y = point.GraphicData
        assert 0 <= x <= source.Columns and 0 <= y <= source.Rows
        assert point.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    stored_points = sorted((round(p.GraphicData[0] - 0.5), round(p.GraphicData[1] - 0.5)) for p in points)
    for label in LABELS:  # each spot is marked by both maps' peaks (±1 px)
        near = [p for p in stored_points if max(abs(p[0] - spots[label][0]), abs(p[1] - spots[label][1])) <= 1]
        assert len(near) == 2, (label, stored_points, spots)
    report = hd.sr.srread(tmp_path / "out" / "src.sr.dcm")
    groups = report.content.get_planar_roi_measurement_groups()
    values = sorted(round(float(m.value), 2) for g in groups for m in g.get_measurements())
    assert len(groups) == 4 and values == sorted([0.91, 0.91, 0.37, 0.37, 0.9, 0.9, 0.7, 0.7])  # probability, peak

    gsps = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm")
    assert gsps.SOPClassUID == GrayscaleSoftcopyPresentationStateStorage
    assert gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert gsps.PresentationLUTShape == ("INVERSE" if monochrome1 else "IDENTITY")
    annotation = gsps.GraphicAnnotationSequence[0]
    assert len(annotation.GraphicObjectSequence) == len(annotation.TextObjectSequence) == 4


def test_source_that_does_not_match_the_maps_names_the_file(tmp_path):
    path, _ = _source(tmp_path / "src.dcm", right=False, monochrome1=False)
    geometry = PreparedGeometry(stored_shape=(100, 80), prepared_shape=(50, 40))
    maps = {"prediction": np.zeros((2, 50, 40), np.float32)}
    with pytest.raises(FileProblem, match=r"src\.dcm: Rows×Columns 120×80 differ"):
        write_dicom_outputs(path, maps, LABELS, None, {}, geometry, tmp_path / "out")
    with pytest.raises(FileProblem, match=r"nothing\.dcm: cannot read"):
        write_dicom_outputs(tmp_path / "nothing.dcm", maps, LABELS, None, {}, geometry, tmp_path / "out")


def test_explain_dicom_writes_the_objects_beside_the_maps(tmp_path):
    """``correlax explain --dicom`` end to end with a tiny untrained model, a right MONOCHROME1 mammogram
    that the canonical flip mirrors: the Parametric Map holds the peak's value where the JSON says it is."""
    import torch

    from correlax.cli.main import main
    from correlax.models import CheckpointInfo, create_model, save_checkpoint

    torch.manual_seed(0)
    labels = ("no_finding", "mass", "calcification")
    info = CheckpointInfo(labels=labels, backbone="tiny", preprocess=PreprocessSettings(canonical_flip=True).to_dict())
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny", labels), info)
    path, _ = _source(tmp_path / "right.dcm", right=True, monochrome1=True)
    out = tmp_path / "out"
    args = ["explain", "--model", str(ckpt), "--out", str(out), str(path), "--window", "32", "--stride", "16", "--masks", "8"]
    assert main([*args, "--dicom"]) == 0
    summary = json.loads((out / "right.json").read_text())
    assert summary["grid"]["flipped"]
    source = pydicom.dcmread(path)
    for label in labels:  # no resampling here: the stored map is the prepared one mirrored, value for value
        pm = pydicom.dcmread(out / f"right_prediction_{label}.pm.dcm")
        assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns)
        mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
        peak = summary["peaks"]["prediction"][label]
        stored = pm.pixel_array[peak["source_y"], peak["source_x"]] * mapping.RealWorldValueSlope
        assert stored + mapping.RealWorldValueIntercept == pytest.approx(peak["value"], abs=1e-4)
    assert {p.name for p in out.glob("right*.dcm")} >= {"right.sr.dcm", "right.gsps.dcm"}
