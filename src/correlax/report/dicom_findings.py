"""What the DICOM outputs report: the findings the model calls, and where the maps point for each (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from correlax.labels import NO_FINDING
from correlax.preprocess import PreparedGeometry

DEFAULT_THRESHOLD = 0.5  # for a label the model has no validation threshold for (as the evaluation does)
PEAK_MAPS = ("prediction", "corr_pred")  # the per-class maps whose peaks are marked


@dataclass(frozen=True)
class CalledFinding:
    """A finding the model calls on an image: its label, probability and the threshold it reached."""

    label: str
    probability: float
    threshold: float


@dataclass(frozen=True)
class PeakMark:
    """A map's peak for a called finding, in DICOM pixel coordinates of the source (top-left corner (0, 0),
    a pixel's centre at index + 0.5)."""

    finding: CalledFinding
    map: str
    x: float
    y: float
    value: float


def called_findings(
    labels: Sequence[str], probabilities: Mapping[str, float], thresholds: Mapping[str, float] | None
) -> list[CalledFinding]:
    """The findings the model calls: every label but no_finding whose probability reaches its threshold
    (the model's validation-chosen one, else :data:`DEFAULT_THRESHOLD`)."""
    thresholds = thresholds or {}
    called = []
    for label in labels:
        if label == NO_FINDING or label not in probabilities:
            continue
        cut = float(thresholds.get(label, DEFAULT_THRESHOLD))
        if probabilities[label] >= cut:
            called.append(CalledFinding(label, float(probabilities[label]), cut))
    return called


def unmarked(findings: Sequence[CalledFinding], marks: Sequence[PeakMark]) -> list[CalledFinding]:
    """The called findings no map points at (no peak given for them)."""
    return [f for f in findings if all(m.finding != f for m in marks)]


def peak_marks(
    peaks: Mapping[str, Mapping[str, Mapping[str, float]]],
    findings: Sequence[CalledFinding],
    geometry: PreparedGeometry,
) -> list[PeakMark]:
    """Per called finding and map in :data:`PEAK_MAPS`, the map's peak (``peaks``: ``{map: {label: {"x", "y",
    "value"}}}`` in prepared-grid pixels) on the source's pixel grid."""
    marks = []
    for finding in findings:
        for name in PEAK_MAPS:
            peak = peaks.get(name, {}).get(finding.label)
            if peak is None:
                continue
            x, y = geometry.points_to_stored([[peak["x"], peak["y"]]])[0] + 0.5
            marks.append(PeakMark(finding, name, float(x), float(y), float(peak["value"])))
    return marks
