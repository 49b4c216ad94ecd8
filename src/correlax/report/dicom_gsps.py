"""The Grayscale Softcopy Presentation State of the findings the model calls: circles and captions on the source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from correlax.labels import DISPLAY_NAMES
from correlax.report.dicom_findings import CalledFinding, PeakMark, unmarked
from correlax.report.dicom_pm import MAP_NAMES
from correlax.report.dicom_series import DEVICE, Series


def caption(mark: PeakMark) -> str:
    """The text beside a mark: finding, probability, which map's peak and its value (64 characters at most)."""
    name = DISPLAY_NAMES.get(mark.finding.label, mark.finding.label)
    return f"{name} p = {mark.finding.probability:.2f} ({MAP_NAMES[mark.map]} peak {mark.value:.2f})"[:64]


def presentation_state(src: Dataset, findings: Sequence[CalledFinding], marks: Sequence[PeakMark], series: Series,
                       instance_number: int, radius: float | None = None) -> Dataset:  # fmt: skip
    """Each mark as a circle with a caption; a called finding without a mark, or "no finding" when none is
    called, as a caption in the top-left corner. ``src`` carries the one VOI transform the display uses;
    MONOCHROME1 keeps its inverted display."""
    import highdicom as hd

    rows, columns = int(src.Rows), int(src.Columns)
    radius = radius or max(4.0, min(rows, columns) / 80)
    layer = hd.pr.GraphicLayer(layer_name="CORRELAX", order=1, description="CorRELAX findings")
    circles, captions = [], []
    for mark in marks:
        x, y = mark.x, mark.y
        outline = np.array([[x, y], [x + radius, y]])  # centre, a point on the circle
        circles.append(hd.pr.GraphicObject(hd.pr.GraphicTypeValues.CIRCLE, outline, "PIXEL"))
        captions.append(hd.pr.TextObject(caption(mark), "PIXEL", anchor_point=(x, y)))
    corner = [f"CorRELAX: {DISPLAY_NAMES[f.label]} p = {f.probability:.2f}" for f in unmarked(findings, marks)]
    line = max(2.0, rows / 20)
    for i, text in enumerate(corner if findings else ["CorRELAX: no finding"]):
        box = (1.0, 1.0 + i * line, max(2.0, columns / 2), (i + 1) * line)
        captions.append(hd.pr.TextObject(text, "PIXEL", bounding_box=box, text_justification="LEFT"))
    annotation = hd.pr.GraphicAnnotation([src], layer, graphic_objects=circles or None, text_objects=captions)
    inverse = src.get("PhotometricInterpretation") == "MONOCHROME1"
    lut = hd.PresentationLUTTransformation(presentation_lut_shape="INVERSE" if inverse else "IDENTITY")
    return hd.pr.GrayscaleSoftcopyPresentationState(
        [src], series.uid, series.number, generate_uid(), instance_number, **DEVICE, content_label="CORRELAX",
        content_description="CorRELAX findings", graphic_annotations=[annotation], graphic_layers=[layer],
        presentation_lut_transformation=lut, series_description=series.description,
    )  # fmt: skip
