"""DICOM outputs (Parametric Map, TID 1500 SR, GSPS, overlays) land on the stored pixels, flips and MONOCHROME1
included, and report only the findings the model calls, in standard codes."""

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ComprehensiveSRStorage, GrayscaleSoftcopyPresentationStateStorage, ParametricMapStorage

from correlax.errors import FileProblem
from correlax.io import read_image
from correlax.preprocess import PreparedGeometry, PreprocessSettings, prepare
from dicom_factory import write_mammogram

hd = pytest.importorskip("highdicom")
from correlax.report.dicom_export import SeriesPlan, stored_spacing, write_dicom_outputs  # noqa: E402

LABELS = ("no_finding", "mass", "calcification")
SETTINGS = PreprocessSettings(canonical_flip=True, target_spacing=0.2)  # stored spacing 0.1: half size
CALLED = {"no_finding": 0.95, "mass": 0.91, "calcification": 0.37}
THRESHOLDS = {"no_finding": 0.5, "mass": 0.5, "calcification": 0.3}  # mass and calcification called, no_finding never


def _outputs(tmp_path: Path, probabilities=CALLED, thresholds=THRESHOLDS, right=False, monochrome1=False,
             settings=SETTINGS, name="src", series=None, **source_kwargs):  # fmt: skip
    """Write a synthetic mammogram and its DICOM outputs from fake maps (a bump per class on its spot, none for
    no_finding); returns (source path, stored spots, written paths, prepared image)."""
    path = tmp_path / f"{name}.dcm"
    spots = write_mammogram(path, right, monochrome1, **source_kwargs)
    prepared = prepare(read_image(path), settings)
    grey = prepared.image[..., 0].astype(float)
    h, w = grey.shape
    scale = prepared.geometry.scale
    yy, xx = np.mgrid[:h, :w]
    bumps = [np.zeros((h, w))]
    for x, y in spots.values():  # the spot's prepared pixel, found in the pixels near where it should be
        px = round((w - (x + 0.5) * scale[0]) if prepared.flipped else (x + 0.5) * scale[0] - 0.5)
        py = round((y + 0.5) * scale[1] - 0.5)
        window = grey[py - 3 : py + 4, px - 3 : px + 4]
        dy, dx = np.unravel_index(int(np.argmax(window)), window.shape)
        bumps.append(np.exp(-((xx - (px - 3 + dx)) ** 2 + (yy - (py - 3 + dy)) ** 2) / (2 * 3.0**2)))
    bumps = np.stack(bumps)
    maps = {"prediction": (0.9 * bumps).astype(np.float32), "corr_pred": (0.8 * bumps - 0.1).astype(np.float32)}
    peaks = {}
    for map_name, m in maps.items():
        peaks[map_name] = {}
        for c, label in enumerate(LABELS):
            y, x = np.unravel_index(int(np.argmax(m[c])), m[c].shape)
            peaks[map_name][label] = {"x": int(x), "y": int(y), "value": float(m[c][y, x])}
    written = write_dicom_outputs(path, maps, LABELS, probabilities, peaks, prepared.geometry, tmp_path / "out", name,
                                  thresholds=thresholds, spacing=stored_spacing(prepared), series=series)  # fmt: skip
    return path, spots, written, prepared


def _items(item, value_type: str) -> list:
    """Every content item of ``value_type`` in an SR, depth first."""
    found = [item] if item.get("ValueType") == value_type else []
    for child in item.get("ContentSequence", []):
        found += _items(child, value_type)
    return found


def _codes(item) -> set[tuple[str, str]]:
    """(scheme, value) of every coded concept name and value in an SR."""
    found = set()
    for keyword in ("ConceptNameCodeSequence", "ConceptCodeSequence"):
        for code in item.get(keyword, []):
            found.add((code.CodingSchemeDesignator, code.CodeValue))
    for child in item.get("ContentSequence", []):
        found |= _codes(child)
    return found


@pytest.mark.parametrize(("right", "monochrome1"), [(False, False), (True, True), (True, False)])
def test_dicom_outputs_land_on_the_stored_pixels(tmp_path, right, monochrome1):
    path, spots, out, _ = _outputs(tmp_path, right=right, monochrome1=monochrome1)
    source = pydicom.dcmread(path)
    assert len(out) == 2 * 3 + 2 + 2 and all(p.exists() for p in out)  # 6 maps, SR, GSPS, 2 overlays

    for name in ("prediction", "corr_pred"):
        for label in ("mass", "calcification"):
            pm = pydicom.dcmread(tmp_path / "out" / f"src_{name}_{label}.pm.dcm")
            assert pm.SOPClassUID == ParametricMapStorage
            assert (pm.Rows, pm.Columns) == (source.Rows, source.Columns) and pm.Laterality == source.ImageLaterality
            derivation = pm.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
            assert derivation.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
            mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
            values = pm.pixel_array * mapping.RealWorldValueSlope + mapping.RealWorldValueIntercept
            y, x = np.unravel_index(int(np.argmax(values)), values.shape)
            assert abs(int(x) - spots[label][0]) <= 1 and abs(int(y) - spots[label][1]) <= 1, (name, label, x, y)

    sr = pydicom.dcmread(tmp_path / "out" / "src.sr.dcm")
    assert sr.SOPClassUID == ComprehensiveSRStorage
    points = _items(sr, "SCOORD")
    assert len(points) == 2 * 2  # two called findings, the peak of each map
    stored_points = sorted((round(p.GraphicData[0] - 0.5), round(p.GraphicData[1] - 0.5)) for p in points)
    for label in ("mass", "calcification"):  # each spot is marked by both maps' peaks (±1 px)
        near = [p for p in stored_points if max(abs(p[0] - spots[label][0]), abs(p[1] - spots[label][1])) <= 1]
        assert len(near) == 2, (label, stored_points, spots)
    gsps = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm")
    assert gsps.SOPClassUID == GrayscaleSoftcopyPresentationStateStorage
    assert gsps.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert gsps.PresentationLUTShape == ("INVERSE" if monochrome1 else "IDENTITY")


def test_only_called_findings_are_reported_with_their_probability(tmp_path):
    """Item 1: no_finding is never a point; calcification (0.37) is under its threshold 0.4 here; mass (0.91) is
    reported with its probability as a measurement, by the SR and by the GSPS."""
    _, spots, out, _ = _outputs(tmp_path, thresholds={"mass": 0.5, "calcification": 0.4})
    report = hd.sr.srread(tmp_path / "out" / "src.sr.dcm")
    groups = report.content.get_planar_roi_measurement_groups()
    assert len(groups) == 2 and {g.finding_type.value for g in groups} == {"4147007"}  # Mass, one per map peak
    for group in groups:
        probability = group.get_measurements(name=hd.sr.CodedConcept("122157", "DCM", "Probability"))
        assert [round(float(m.value), 2) for m in probability] == [0.91]
        ((x, y),) = group.roi.value
        assert max(abs(x - 0.5 - spots["mass"][0]), abs(y - 0.5 - spots["mass"][1])) <= 1.5
    gsps = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm")
    annotation = gsps.GraphicAnnotationSequence[0]
    assert len(annotation.GraphicObjectSequence) == 2
    assert all(t.UnformattedTextValue.startswith("Mass p = 0.91") for t in annotation.TextObjectSequence)
    assert {p.name for p in out if p.name.endswith(".sc.dcm")} == {"src_overlay_mass.sc.dcm"}


def test_nothing_called_says_no_finding_once(tmp_path):
    """Item 1: below every threshold (and no_finding high): no point at all, "No abnormality" once, no overlay."""
    _, _, out, _ = _outputs(tmp_path, probabilities={"no_finding": 0.99, "mass": 0.2, "calcification": 0.1})
    sr = pydicom.dcmread(tmp_path / "out" / "src.sr.dcm")
    assert _items(sr, "SCOORD") == []
    no_abnormality = [i for i in _items(sr, "CODE") if i.ConceptCodeSequence[0].CodeValue == "111286"]
    assert len(no_abnormality) == 1 and no_abnormality[0].ConceptNameCodeSequence[0].CodeValue == "121071"  # Finding
    gsps = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm")
    annotation = gsps.GraphicAnnotationSequence[0]
    assert "GraphicObjectSequence" not in annotation
    assert [t.UnformattedTextValue for t in annotation.TextObjectSequence] == ["CorRELAX: no finding"]
    assert not [p for p in out if p.name.endswith(".sc.dcm")]


def test_a_called_finding_without_a_peak_is_still_reported(tmp_path):
    """Item 1: a caller that gives no peaks still gets the called finding (type and probability, no point) and no
    "no finding"."""
    path = tmp_path / "src.dcm"
    write_mammogram(path)
    prepared = prepare(read_image(path), SETTINGS)
    maps = {"prediction": np.zeros((3, *prepared.image.shape[:2]), np.float32)}
    write_dicom_outputs(path, maps, LABELS, CALLED, {}, prepared.geometry, tmp_path / "out", thresholds={"mass": 0.5,
                        "calcification": 0.9})  # fmt: skip
    sr = pydicom.dcmread(tmp_path / "out" / "src.sr.dcm")
    assert _items(sr, "SCOORD") == []
    findings = [i.ConceptCodeSequence[0].CodeValue for i in _items(sr, "CODE")
                if i.ConceptNameCodeSequence[0].CodeValue == "121071"]  # fmt: skip
    assert findings == ["4147007"]
    probabilities = [i for i in _items(sr, "NUM") if i.ConceptNameCodeSequence[0].CodeValue == "122157"]
    assert [round(float(i.MeasuredValueSequence[0].NumericValue), 2) for i in probabilities] == [0.91]
    captions = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm").GraphicAnnotationSequence[0].TextObjectSequence
    assert [t.UnformattedTextValue for t in captions] == ["CorRELAX: Mass p = 0.91"]


@pytest.mark.parametrize("right", [False, True])
def test_sr_uses_standard_codes_finding_site_laterality_and_an_image_library(tmp_path, right):
    """Item 2: SNOMED CT Mass / Calcification of breast, site Breast with the source's laterality, a TID 1600
    Image Library naming the source; the private scheme only for the two map-peak concepts."""
    path, _, _, _ = _outputs(tmp_path, right=right)
    source = pydicom.dcmread(path)
    sr = pydicom.dcmread(tmp_path / "out" / "src.sr.dcm")
    report = hd.sr.srread(tmp_path / "out" / "src.sr.dcm")
    groups = report.content.get_planar_roi_measurement_groups()
    assert sorted({(g.finding_type.scheme_designator, g.finding_type.value) for g in groups}) == [
        ("SCT", "309587003"), ("SCT", "4147007")]  # fmt: skip
    for group in groups:
        (site,) = group.finding_sites
        assert (site.value.scheme_designator, site.value.value) == ("SCT", "76752008")  # Breast
        assert site.laterality.value == ("24028007" if right else "7771000")  # Right / Left
    library = [c for c in _items(sr, "CONTAINER") if c.ConceptNameCodeSequence[0].CodeValue == "111028"]
    assert len(library) == 1
    images = _items(library[0], "IMAGE")
    assert [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in images] == [source.SOPInstanceUID]
    private = {value for scheme, value in _codes(sr) if scheme == "99CORRELAX"}
    assert private == {"prediction-peak", "corr_pred-peak"}
    assert [s.CodingSchemeDesignator for s in sr.CodingSchemeIdentificationSequence] == ["99CORRELAX"]


def test_a_header_without_patient_orientation_gets_an_sr_without_image_library(tmp_path):
    """The Image Library entry of a projection image needs Patient Orientation: without it the SR is still written."""
    _outputs(tmp_path, extra={"PatientOrientation": ""})
    sr = pydicom.dcmread(tmp_path / "out" / "src.sr.dcm")
    assert not [c for c in _items(sr, "CONTAINER") if c.ConceptNameCodeSequence[0].CodeValue == "111028"]
    assert len(_items(sr, "SCOORD")) == 4


def test_a_source_with_a_window_and_a_voi_lut_keeps_its_gsps(tmp_path):
    """Item 3: Window Center/Width and a VOI LUT Sequence are both legal; the GSPS takes the VOI LUT Sequence's
    first LUT (what the reader applies) and no window."""
    luts = []
    for first in (0, 100):
        lut = Dataset()
        lut.LUTDescriptor = [4096, first, 16]
        lut.LUTData = np.arange(0, 65536, 16, dtype="<u2").tobytes()
        luts.append(lut)
    _, _, out, _ = _outputs(tmp_path, window=(1000, 2000), extra={"VOILUTSequence": luts})
    gsps = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm")
    (voi,) = gsps.SoftcopyVOILUTSequence
    assert "WindowCenter" not in voi and [v.LUTDescriptor[1] for v in voi.VOILUTSequence] == [0]


def test_a_source_with_several_windows_gets_the_first(tmp_path):
    """Item 3: several windows: the GSPS keeps the first (as the reader does)."""
    _outputs(tmp_path, extra={"WindowCenter": [1000, 1500], "WindowWidth": [2000, 800]})
    (voi,) = pydicom.dcmread(tmp_path / "out" / "src.gsps.dcm").SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (1000, 2000)


def test_imager_pixel_spacing_only_gives_the_map_its_pixel_measures(tmp_path):
    """Item 4: ImagerPixelSpacing only (most mammography), resampled for the model: the Parametric Map states the
    stored grid's spacing, the one the reader used."""
    _, _, _, prepared = _outputs(tmp_path, imager_spacing=(0.1, 0.12))
    assert prepared.image.shape[:2] == (60, 48)  # resampled to 0.2 mm
    pm = pydicom.dcmread(tmp_path / "out" / "src_prediction_mass.pm.dcm")
    spacing = pm.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.1, 0.12])


def test_a_four_view_exam_gets_one_series_per_kind(tmp_path):
    """Item 5: the four images of a study share one series per kind, each numbered and described; instance
    numbers differ within a series; series numbers differ between kinds."""
    study = pydicom.uid.generate_uid()
    objects = []
    for number, (right, view) in enumerate([(False, "CC"), (True, "CC"), (False, "MLO"), (True, "MLO")], 1):
        name = f"{'R' if right else 'L'}{view}"
        orientation = {"PatientOrientation": ["P" if right else "A", "FL" if right else "FR"]} if view == "MLO" else {}
        _, _, out, _ = _outputs(tmp_path, right=right, name=name, series=SeriesPlan("run 1", number),
                                extra={"StudyInstanceUID": study, "ViewPosition": view, **orientation})  # fmt: skip
        objects += [pydicom.dcmread(p, stop_before_pixels=True) for p in out]
    by_series: dict[str, list] = {}
    for ds in objects:
        assert ds.StudyInstanceUID == study and ds.SeriesDescription
        by_series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    assert len(by_series) == 4  # maps, SR, GSPS, overlays
    numbers = {}
    for members in by_series.values():
        assert len({(ds.SeriesNumber, ds.SeriesDescription, ds.SOPClassUID) for ds in members}) == 1
        assert len({ds.InstanceNumber for ds in members}) == len(members)
        numbers[members[0].SOPClassUID.name] = members[0].SeriesNumber
    assert len(set(numbers.values())) == 4, numbers
    overlay = pydicom.dcmread(tmp_path / "out" / "RMLO_overlay_mass.sc.dcm", stop_before_pixels=True)
    assert list(overlay.PatientOrientation) == ["P", "FL"]  # an oblique view's orientation, as the source states it
    gsps = [ds for ds in objects if ds.SOPClassUID == GrayscaleSoftcopyPresentationStateStorage]
    assert len(gsps) == 4 and "presentation state" in gsps[0].SeriesDescription
    assert len(by_series[gsps[0].SeriesInstanceUID]) == 4


def test_overlay_is_an_rgb_secondary_capture_not_for_diagnostic_use(tmp_path):
    """Item 6: per called finding, the source's pixels with the map blended in (colour at the spot, the image's
    grey far from it), "NOT FOR DIAGNOSTIC USE" burned in and in the header."""
    path, spots, _, _ = _outputs(tmp_path)
    source = pydicom.dcmread(path)
    for label in ("mass", "calcification"):
        sc = pydicom.dcmread(tmp_path / "out" / f"src_overlay_{label}.sc.dcm")
        assert sc.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert (sc.Rows, sc.Columns, sc.SamplesPerPixel, sc.PhotometricInterpretation) == (120, 80, 3, "RGB")
        assert sc.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless  # lossless, which every PACS reads
        assert sc.BurnedInAnnotation == "YES" and "NOT FOR DIAGNOSTIC USE" in sc.ImageComments
        assert "NOT FOR DIAGNOSTIC USE" in sc.SeriesDescription and sc.StudyInstanceUID == source.StudyInstanceUID
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        rgb = sc.pixel_array.astype(int)
        x, y = spots[label]
        assert np.ptp(rgb[y, x]) > 50  # coloured where the finding's map is high
        grey = rgb[100, 10]  # inside the breast, far from both spots: the image's own grey
        assert np.ptp(grey) == 0 and grey[0] > 0
        corner = rgb[:6, 40:]  # the source is black there (outside the breast): light grey is the burned-in text
        assert ((np.ptp(corner, axis=-1) == 0) & (corner[..., 0] > 100)).sum() >= 10


def test_source_that_does_not_match_the_maps_names_the_file(tmp_path):
    path = tmp_path / "src.dcm"
    write_mammogram(path)
    geometry = PreparedGeometry(stored_shape=(100, 80), prepared_shape=(50, 40))
    maps = {"prediction": np.zeros((2, 50, 40), np.float32)}
    probabilities = {"mass": 0.1, "calcification": 0.1}
    with pytest.raises(FileProblem, match=r"src\.dcm: Rows×Columns 120×80 differ"):
        write_dicom_outputs(path, maps, LABELS[1:], probabilities, {}, geometry, tmp_path / "out")
    with pytest.raises(FileProblem, match=r"nothing\.dcm: cannot read"):
        write_dicom_outputs(tmp_path / "nothing.dcm", maps, LABELS[1:], probabilities, {}, geometry, tmp_path / "out")


# dciodvfy errors a Parametric Map of a projection mammogram keeps (docs/dicom.md): the IOD asks for a Frame of
# Reference and a plane position/orientation, which a projection image does not have.
PM_ERRORS = {
    "Missing attribute Type 1 Required Element=<FrameOfReferenceUID> Module=<FrameOfReference>",
    "Missing attribute Type 2 Required Element=<PositionReferenceIndicator> Module=<FrameOfReference>",
    "Missing attribute Type 1 Required Element=<PlaneOrientationSequence> Module=<PlaneOrientationMacro>",
    "Missing attribute Type 1 Required Element=<PlanePositionSequence> Module=<PlanePositionMacro>",
    "Missing attribute Type 1 Required Element=<PlanePositionSlideSequence> Module=<PlanePositionSlideMacro>",
}


def dciodvfy_errors(path: Path) -> set[str]:
    """The distinct errors dicom3tools' dciodvfy reports for one file."""
    import subprocess

    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return {line.split("Error - ", 1)[1].strip() for line in lines if "Error - " in line}


@pytest.mark.skipif(not shutil.which("dciodvfy"), reason="dciodvfy not installed (Debian package dicom3tools)")
@pytest.mark.parametrize("called", [True, False])
def test_dciodvfy_finds_no_errors_but_the_documented_ones(tmp_path, called):
    """Every object for a synthetic mammogram (ImagerPixelSpacing only, a window and a VOI LUT), with findings
    called and without: no dciodvfy error, except the Parametric Map's documented frame-of-reference ones."""
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.LUTData = np.arange(0, 65536, 16, dtype="<u2").tobytes()
    probabilities = CALLED if called else {"no_finding": 0.9, "mass": 0.1, "calcification": 0.1}
    _, _, out, _ = _outputs(tmp_path, probabilities=probabilities, window=(1000, 2000), extra={"VOILUTSequence": [lut]})
    assert len(out) == (10 if called else 8)
    for path in out:
        errors = dciodvfy_errors(path)
        allowed = PM_ERRORS if path.name.endswith(".pm.dcm") else set()
        assert errors <= allowed, (path.name, errors - allowed)
    assert dciodvfy_errors(out[0]) == PM_ERRORS  # the check sees errors at all


def test_blend_leaves_the_image_where_the_map_is_zero_and_colours_it_where_it_is_high():
    from matplotlib import colormaps

    from correlax.report.dicom_overlay import COLORMAP, MAX_ALPHA, blend

    grey = np.full((2, 2), 100, np.uint8)
    rgb = blend(grey, np.array([[-0.5, 0.0], [1.0, 2.0]]))
    assert (rgb[0] == 100).all()  # at or below 0: the image's own grey
    top = np.asarray(colormaps[COLORMAP](1.0)[:3]) * 255
    assert np.abs(rgb[1].astype(float) - ((1 - MAX_ALPHA) * 100 + MAX_ALPHA * top)).max() <= 1  # clipped to 1
