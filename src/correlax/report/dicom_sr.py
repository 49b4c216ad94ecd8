"""The TID 1500 Measurement Report of the findings the model calls on one image (Comprehensive SR)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

import correlax
from correlax.labels import DISPLAY_NAMES
from correlax.report import dicom_codes as code
from correlax.report.dicom_findings import CalledFinding, PeakMark, unmarked
from correlax.report.dicom_pm import MAP_NAMES


def finding_site(laterality: str):
    """Breast, with the source's laterality when it states one (L, R, B)."""
    import highdicom as hd

    return hd.sr.FindingSite(anatomic_location=code.BREAST, laterality=code.LATERALITY.get(laterality))


def structured_report(src: Dataset, findings: Sequence[CalledFinding], marks: Sequence[PeakMark], laterality: str,
                      series: Series, instance_number: int) -> Dataset:  # fmt: skip
    """One planar ROI (the map's peak, a point) per mark, with the finding's standard code, its site and the
    predicted probability; a measurement group without a region for a called finding no mark points at; when
    nothing is called, one "Finding: No abnormality" for the image. The Image Library (TID 1600) lists the
    source when its header has what the library's entry needs."""
    import highdicom as hd

    algorithm = hd.sr.AlgorithmIdentification(name="correlax", version=correlax.__version__)
    site = [finding_site(laterality)]
    source = hd.sr.SourceImageForRegion.from_source_image(src)
    image = [hd.sr.SourceImageForMeasurementGroup.from_source_image(src)]

    def probability(finding: CalledFinding):
        return hd.sr.Measurement(code.PROBABILITY, finding.probability, code.NO_UNITS, algorithm_id=algorithm)

    groups: list = []
    for mark in marks:
        label, map_name = mark.finding.label, MAP_NAMES[mark.map]
        peak = hd.sr.Measurement(code.PEAK_CONCEPTS[mark.map], mark.value, code.NO_UNITS, algorithm_id=algorithm)
        measurements = [probability(mark.finding), peak]
        region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POINT,
                                   graphic_data=np.array([[mark.x, mark.y]]), source_image=source)  # fmt: skip
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{DISPLAY_NAMES[label]} {map_name} peak")
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_region=region, finding_type=code.finding_code(label),
            algorithm_id=algorithm, finding_sites=site, measurements=measurements,
        ))  # fmt: skip
    for finding in unmarked(findings, marks):
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=DISPLAY_NAMES[finding.label]),
            finding_type=code.finding_code(finding.label), algorithm_id=algorithm, finding_sites=site,
            measurements=[probability(finding)], source_images=image,
        ))  # fmt: skip
    if not findings:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="no finding"),
            algorithm_id=algorithm, finding_sites=site, source_images=image,
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(code.FINDING, code.NO_FINDING)],
        ))  # fmt: skip
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid(), name="correlax")
    observer = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                                      observer_identifying_attributes=device)
    )  # fmt: skip
    library = [src] if has_library_descriptors(src) else None
    report = hd.sr.MeasurementReport(observer, codes.LN.BreastUnilateralMammogram, groups, referenced_images=library)
    return hd.sr.ComprehensiveSR(
        evidence=[src], content=report[0], series_instance_uid=series.uid, series_number=series.number,
        sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer="correlax",
        series_description=series.description, coding_schemes=[code.private_scheme()],
    )  # fmt: skip


def has_library_descriptors(src: Dataset) -> bool:
    """Whether the header has what a TID 1602 entry of a projection image needs (highdicom reads both): Patient
    Orientation and Imager Pixel Spacing, type 1 for MG and DX; files without them get no Image Library."""
    return bool(src.get("PatientOrientation")) and bool(src.get("ImagerPixelSpacing"))
