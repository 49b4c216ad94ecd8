"""DICOM outputs a PACS viewer opens: Parametric Maps of the heatmaps, a TID 1500 SR and a GSPS of the peaks.

Mammograms (DX/MG) have no frame of reference, so every object is on the stored pixel grid of the
source image and references its SOP instance: the maps are brought back from the prepared grid with
:class:`correlax.preprocess.PreparedGeometry` (undoing crop, resampling and the canonical flip).
Needs the optional extra ``correlax[dicom]`` (highdicom).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

import correlax
from correlax.errors import FileProblem
from correlax.fileio import atomic_write_bytes
from correlax.labels import DISPLAY_NAMES
from correlax.preprocess import PreparedGeometry

SCHEME = "99CORRELAX"  # private coding scheme for what no standard code names
MAP_NAMES = {"prediction": "prediction map", "corr_pred": "correlation map"}
VALUE_RANGES = {"prediction": (0.0, 1.0), "corr_pred": (-1.0, 1.0)}
LEVELS = 65535  # maps are stored as uint16 with a linear real-world value mapping
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "AccessionNumber", "StudyID", "ReferringPhysicianName")  # fmt: skip
_DEVICE = {"manufacturer": "correlax", "manufacturer_model_name": "correlax",
           "software_versions": correlax.__version__, "device_serial_number": "0"}  # fmt: skip


def write_dicom_outputs(
    source: Path,
    maps: Mapping[str, np.ndarray],
    labels: Sequence[str],
    probabilities: Mapping[str, float] | None,
    peaks: Mapping[str, Mapping[str, Mapping[str, float]]],
    geometry: PreparedGeometry,
    out_dir: Path,
    name: str | None = None,
) -> list[Path]:
    """Write, for one source DICOM, the objects below into ``out_dir`` and return their paths (``<stem>``:
    ``name``, e.g. the output name ``correlax explain`` gives the image, else the source's stem).

    - per map in ``maps`` (``"prediction"``, ``"corr_pred"``: (L, H, W) on the prepared grid) and class, a
      Parametric Map ``<stem>_<map>_<label>.pm.dcm`` on the source's stored pixel grid;
    - ``<stem>.sr.dcm``: a Comprehensive SR (TID 1500) with, per class and map, the peak point, the map's
      value there and the predicted probability (when ``probabilities`` gives it);
    - ``<stem>.gsps.dcm``: a Grayscale Softcopy Presentation State with the same points and captions.

    ``peaks`` is ``{map: {label: {"x", "y", "value"}}}`` in prepared-grid pixels (as ``correlax explain``
    writes them). Raises :class:`FileProblem` naming the source when it cannot be used.
    """
    src = _source_dataset(source, geometry)
    stem = name or source.stem
    written: list[Path] = []
    pm_series = generate_uid()
    for number, (map_name, c, label) in enumerate(((n, c, lb) for n in maps for c, lb in enumerate(labels)), 1):
        stored = geometry.map_to_stored(maps[map_name][c])
        pm = parametric_map(src, stored, map_name, label, pm_series, number)
        written.append(_save(pm, out_dir / f"{stem}_{map_name}_{label}.pm.dcm", src))
    marks = peak_marks(peaks, labels, geometry, probabilities)
    written.append(_save(structured_report(src, marks), out_dir / f"{stem}.sr.dcm", src))
    written.append(_save(presentation_state(src, marks), out_dir / f"{stem}.gsps.dcm", src))
    return written


def _source_dataset(source: Path, geometry: PreparedGeometry) -> Dataset:
    """The source header (no pixels), checked against the geometry, type-2 patient/study attributes present."""
    try:
        ds = pydicom.dcmread(source, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises assorted errors on damaged headers
        raise FileProblem(source, f"cannot read the DICOM header ({type(exc).__name__}: {exc})") from exc
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns"):
        if not ds.get(keyword):
            raise FileProblem(source, f"no {keyword}: DICOM outputs must reference the source image")
    if (int(ds.Rows), int(ds.Columns)) != tuple(geometry.stored_shape):
        shape = f"{ds.Rows}×{ds.Columns}"
        raise FileProblem(source, f"Rows×Columns {shape} differ from the explained image {geometry.stored_shape}")
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds


def quantise(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map values in ``value_range`` linearly onto uint16 0…65535 (clipped)."""
    lo, hi = value_range
    return np.round((np.clip(values, lo, hi) - lo) / (hi - lo) * LEVELS).astype(np.uint16)


def parametric_map(src: Dataset, stored: np.ndarray, name: str, label: str, series_uid: str, number: int) -> Dataset:
    """A Parametric Map of one class's map on the source's stored grid (uint16 with a real-world value mapping)."""
    import highdicom as hd

    lo, hi = VALUE_RANGES.get(name, (float(stored.min()), float(stored.max())))
    hi = hi if hi > lo else lo + 1.0  # a constant map of another method
    title = f"{DISPLAY_NAMES.get(label, label)} {MAP_NAMES.get(name, name)}"
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=name[:16], lut_explanation=f"CorRELAX {title}", unit=hd.sr.CodedConcept("1", "UCUM", "no units"),
        value_range=(0, LEVELS), intercept=lo, slope=(hi - lo) / LEVELS,
    )  # fmt: skip
    window = hd.VOILUTTransformation(window_center=LEVELS / 2, window_width=LEVELS + 1)
    return _parametric_map_class()(
        [src], quantise(stored, (lo, hi)), series_uid, 901, generate_uid(), number, **_DEVICE,
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[window], content_label=f"{name}_{label}"[:16].upper(),
        content_description=f"CorRELAX {title}"[:64], series_description="CorRELAX maps",
    )  # fmt: skip


@cache
def _parametric_map_class() -> type:
    import highdicom as hd

    class ParametricMap2D(hd.pm.ParametricMap):
        """highdicom's Parametric Map for a source without a frame of reference (DX/MG).

        highdicom 0.28 then indexes frames by Frame Label but writes neither the label nor the index value,
        and its own consistency check fails; this fills both in for the single frame before that check.
        """

        def _build_luts(self) -> None:
            index = self.get("DimensionIndexSequence")
            if index and index[0].DimensionIndexPointer == pydicom.tag.Tag("FrameLabel"):
                for item in self.PerFrameFunctionalGroupsSequence:
                    content = item.FrameContentSequence[0]
                    if not content.get("DimensionIndexValues"):
                        content.FrameLabel = self.ContentLabel
                        content.DimensionIndexValues = [1]
            super()._build_luts()

    return ParametricMap2D


def peak_marks(
    peaks: Mapping[str, Mapping[str, Mapping[str, float]]],
    labels: Sequence[str],
    geometry: PreparedGeometry,
    probabilities: Mapping[str, float] | None,
) -> list[dict]:
    """Per class and map: the peak in DICOM pixel coordinates (the image's top-left corner is (0, 0), a pixel
    centre is index + 0.5), its map value and the class's probability (None when not given)."""
    marks = []
    for name in MAP_NAMES:
        for label in labels:
            peak = peaks.get(name, {}).get(label)
            if peak is None:
                continue
            x, y = geometry.points_to_stored([[peak["x"], peak["y"]]])[0] + 0.5
            probability = None if probabilities is None else probabilities.get(label)
            marks.append({"map": name, "label": label, "x": float(x), "y": float(y),
                          "value": float(peak["value"]), "probability": probability})  # fmt: skip
    return marks


def _code(value: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value[:16], SCHEME, meaning[:64])


def structured_report(src: Dataset, marks: Sequence[dict]) -> Dataset:
    """A Comprehensive SR with a TID 1500 Measurement Report: one planar ROI (a point) per mark."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    no_units = hd.sr.CodedConcept("1", "UCUM", "no units")
    algorithm = hd.sr.AlgorithmIdentification(name="correlax", version=correlax.__version__)
    rois = []
    for mark in marks:
        label, map_name = mark["label"], MAP_NAMES[mark["map"]]
        measurements = [hd.sr.Measurement(_code(f"{mark['map']}-peak", f"Peak of the CorRELAX {map_name}"),
                                          mark["value"], no_units, algorithm_id=algorithm)]  # fmt: skip
        if mark["probability"] is not None:
            name = _code("probability", "Predicted probability")
            measurements.append(hd.sr.Measurement(name, mark["probability"], no_units, algorithm_id=algorithm))
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POINT, graphic_data=np.array([[mark["x"], mark["y"]]]),
            source_image=hd.sr.SourceImageForRegion.from_source_image(src),
        )  # fmt: skip
        rois.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{label} {map_name} peak"),
            referenced_region=region, finding_type=_code(label, DISPLAY_NAMES.get(label, label)),
            algorithm_id=algorithm, measurements=measurements,
        ))  # fmt: skip
    observer = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid(), name="correlax"),
        )
    )  # fmt: skip
    report = hd.sr.MeasurementReport(observer, codes.LN.BreastUnilateralMammogram, rois)
    return hd.sr.ComprehensiveSR(
        evidence=[src], content=report[0], series_instance_uid=generate_uid(), series_number=902,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="correlax",
        series_description="CorRELAX peaks",
    )  # fmt: skip


def presentation_state(src: Dataset, marks: Sequence[dict], radius: float | None = None) -> Dataset:
    """A GSPS that draws each mark as a circle with a caption; MONOCHROME1 sources keep their inverted display."""
    import highdicom as hd

    radius = radius or max(4.0, min(int(src.Rows), int(src.Columns)) / 80)
    layer = hd.pr.GraphicLayer(layer_name="CORRELAX", order=1, description="CorRELAX map peaks")
    circles, captions = [], []
    for mark in marks:
        x, y = mark["x"], mark["y"]
        circles.append(hd.pr.GraphicObject(hd.pr.GraphicTypeValues.CIRCLE, np.array([[x, y], [x + radius, y]]), "PIXEL"))
        text = f"{DISPLAY_NAMES.get(mark['label'], mark['label'])} {MAP_NAMES[mark['map']]} {mark['value']:.2f}"
        if mark["probability"] is not None:
            text += f", p = {mark['probability']:.2f}"
        captions.append(hd.pr.TextObject(text[:64], "PIXEL", anchor_point=(x, y)))
    annotation = hd.pr.GraphicAnnotation([src], layer, graphic_objects=circles, text_objects=captions)
    inverse = src.get("PhotometricInterpretation") == "MONOCHROME1"
    lut = hd.PresentationLUTTransformation(presentation_lut_shape="INVERSE" if inverse else "IDENTITY")
    return hd.pr.GrayscaleSoftcopyPresentationState(
        [src], generate_uid(), 903, generate_uid(), 1, **_DEVICE, content_label="CORRELAX",
        content_description="CorRELAX map peaks", graphic_annotations=[annotation], graphic_layers=[layer],
        presentation_lut_transformation=lut,
    )  # fmt: skip


def _save(ds: Dataset, path: Path, src: Dataset) -> Path:
    """Write atomically; the series gets the source's laterality (General Series, type 2C for a paired organ)."""
    laterality = str(src.get("ImageLaterality", src.get("Laterality", ""))).strip().upper()
    if laterality in ("L", "R") and ds.get("Modality") != "SR":
        ds.Laterality = laterality
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
