"""DICOM outputs a PACS viewer opens: Parametric Maps of the heatmaps, a TID 1500 SR and a GSPS of the findings
the model calls, and heatmap overlays (Secondary Capture) of each called finding.

Mammograms (DX/MG) have no frame of reference, so every object is on the stored pixel grid of the
source image and references its SOP instance: the maps are brought back from the prepared grid with
:class:`correlax.preprocess.PreparedGeometry` (undoing crop, resampling and the canonical flip).
Needs the optional extra ``correlax[dicom]`` (highdicom).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from correlax.errors import FileProblem
from correlax.fileio import atomic_write_bytes
from correlax.labels import DISPLAY_NAMES
from correlax.preprocess import PreparedGeometry, PreparedImage, to_uint8
from correlax.report.dicom_codes import source_laterality
from correlax.report.dicom_findings import CalledFinding, called_findings, peak_marks
from correlax.report.dicom_gsps import presentation_state
from correlax.report.dicom_overlay import blend, burn_in, overlay_image
from correlax.report.dicom_pm import MAP_NAMES, parametric_map
from correlax.report.dicom_series import NOT_FOR_DIAGNOSIS, SeriesPlan
from correlax.report.dicom_sr import structured_report

_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "AccessionNumber", "StudyID", "ReferringPhysicianName")  # fmt: skip
_WINDOW = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction")


def write_dicom_outputs(
    source: Path,
    maps: Mapping[str, np.ndarray],
    labels: Sequence[str],
    probabilities: Mapping[str, float],
    peaks: Mapping[str, Mapping[str, Mapping[str, float]]],
    geometry: PreparedGeometry,
    out_dir: Path,
    name: str | None = None,
    *,
    thresholds: Mapping[str, float] | None = None,
    spacing: tuple[float, float] | None = None,
    series: SeriesPlan | None = None,
) -> list[Path]:
    """Write, for one source DICOM, the objects below into ``out_dir`` and return their paths (``<stem>``:
    ``name``, e.g. the output name ``correlax explain`` gives the image, else the source's stem).

    - per map in ``maps`` (``"prediction"``, ``"corr_pred"``: (L, H, W) on the prepared grid) and class, a
      Parametric Map ``<stem>_<map>_<label>.pm.dcm`` on the source's stored pixel grid, with ``spacing``
      ((row, column) mm of the stored grid, as the reader used it) as its Pixel Measures;
    - ``<stem>.sr.dcm`` (TID 1500) and ``<stem>.gsps.dcm``: per finding the model calls (probability at or above
      its threshold in ``thresholds``, the model's validation-chosen ones), each map's peak with the probability;
      "no finding" once when none is called;
    - ``<stem>_overlay_<label>.sc.dcm`` per called finding: the source's pixels as the reader shows them with
      the finding's map blended in, not for diagnostic use.

    ``peaks`` is ``{map: {label: {"x", "y", "value"}}}`` in prepared-grid pixels (as ``correlax explain``
    writes them). ``series`` puts the objects in the run's series (default: series of their own). Raises
    :class:`FileProblem` naming the source when it cannot be used.
    """
    src = source_dataset(source, geometry)
    stem = name or source.stem
    plan, study = series or SeriesPlan.single(), src.StudyInstanceUID
    findings = called_findings(labels, probabilities, thresholds)
    written: list[Path] = []
    pm_series = plan.series(study, "pm")
    pairs = [(n, c, lb) for n in maps for c, lb in enumerate(labels)]
    for number, (map_name, c, label) in enumerate(pairs, 1):
        stored = geometry.map_to_stored(maps[map_name][c])
        pm = parametric_map(src, stored, map_name, label, pm_series, plan.instance_number(len(pairs), number), spacing)
        written.append(_save(pm, out_dir / f"{stem}_{map_name}_{label}.pm.dcm", src))
    marks = peak_marks(peaks, findings, geometry)
    side = source_laterality(src)
    sr = structured_report(src, findings, marks, side, plan.series(study, "sr"), plan.instance_number(1))
    written.append(_save(sr, out_dir / f"{stem}.sr.dcm", src))
    gsps = presentation_state(src, findings, marks, plan.series(study, "gsps"), plan.instance_number(1))
    written.append(_save(gsps, out_dir / f"{stem}.gsps.dcm", src))
    if findings:
        grey = to_uint8(read_display(source))
        for finding in findings:
            heat, title = overlay_heat(maps, labels, finding, geometry)
            rgb = burn_in(blend(grey, heat), [NOT_FOR_DIAGNOSIS, title])
            number = plan.instance_number(len(labels), labels.index(finding.label) + 1)
            sc = overlay_image(src, rgb, title, plan.series(study, "overlay"), number)
            written.append(_save(sc, out_dir / f"{stem}_overlay_{finding.label}.sc.dcm", src))
    return written


def overlay_heat(maps: Mapping[str, np.ndarray], labels: Sequence[str], finding: CalledFinding,
                 geometry: PreparedGeometry) -> tuple[np.ndarray, str]:  # fmt: skip
    """The map an overlay shows for a finding, on the stored grid, and its title: CorRELAX's correlation map
    (where it is positive) when there is one, else the prediction map."""
    name = "corr_pred" if "corr_pred" in maps else "prediction"
    heat = geometry.map_to_stored(maps[name][list(labels).index(finding.label)])
    finding_name = DISPLAY_NAMES.get(finding.label, finding.label)
    title = f"CorRELAX {finding_name} p = {finding.probability:.2f}, {MAP_NAMES[name]}"
    return heat, title


def stored_spacing(prepared: PreparedImage) -> tuple[float, float] | None:
    """(row, column) mm of the source's stored grid: the spacing the reader used, undoing the resampling."""
    if prepared.spacing is None:
        return None
    sx, sy = prepared.geometry.scale
    return round(prepared.spacing[0] * sy, 9), round(prepared.spacing[1] * sx, 9)


def read_display(source: Path) -> np.ndarray:
    """The source's pixels as the reader shows them (VOI applied, MONOCHROME1 inverted)."""
    from correlax.io import read_image

    return read_image(source).pixels


def source_dataset(source: Path, geometry: PreparedGeometry) -> Dataset:
    """The source header (no pixels), checked against the geometry, with type-2 patient/study attributes and
    one VOI transform (see :func:`one_voi_transform`)."""
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
    return one_voi_transform(ds)


def one_voi_transform(ds: Dataset) -> Dataset:
    """Keep the VOI transform the reader applies, the one the presentation state then shows: the VOI LUT
    Sequence's first LUT when there is one (windows dropped), else the first window (pydicom's choice)."""
    if ds.get("VOILUTSequence"):
        ds.VOILUTSequence = ds.VOILUTSequence[:1]
        for keyword in _WINDOW:
            if keyword in ds:
                delattr(ds, keyword)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation"):
            value = ds.get(keyword)
            if isinstance(value, pydicom.multival.MultiValue):
                setattr(ds, keyword, value[0])
    return ds


def _save(ds: Dataset, path: Path, src: Dataset) -> Path:
    """Write atomically; the series gets the source's laterality (General Series, type 2C for a paired organ)."""
    laterality = source_laterality(src)
    if laterality in ("L", "R") and ds.get("Modality") != "SR":
        ds.Laterality = laterality
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
