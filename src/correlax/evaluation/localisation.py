"""What the Pointing Game needs from a data set: the boxed images and their boxes on the map grid,
and the classifier block of ``metrics.json``. The whole run lives in :mod:`correlax.pipelines.pointing_game`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from correlax.data.records import Box, ImageRecord
from correlax.labels import NO_FINDING
from correlax.preprocess import PreparedImage


def boxed_records(records: Iterable[ImageRecord], labels: Sequence[str]) -> list[ImageRecord]:
    """The images the Pointing Game scores: at least one box of a label the model knows (not No Finding)."""
    known = set(labels) - {NO_FINDING}
    return [r for r in records if any(f.box is not None and f.label in known for f in r.findings)]


def boxes_in_prepared(record: ImageRecord, prepared: PreparedImage) -> dict[str, list[Box]]:
    """The record's boxes by label, in the prepared image's pixels (where the maps are)."""
    boxes: dict[str, list[Box]] = {}
    for f in record.findings:
        if f.box is not None and f.label != NO_FINDING:
            boxes.setdefault(f.label, []).append(prepared.map_box(f.box))
    return boxes


def classifier_summary(report: dict) -> dict:
    """The metrics.json ``classifier`` block from a crop-level classification report, at the decision
    threshold the model ships with: the validation-chosen one when the report has it, else 0.5."""
    at = {label: e.get("at_chosen", e["at_0.5"]) for label, e in report["labels"].items()}
    return {key: {label: a[key] for label, a in at.items()} for key in ("threshold", "precision", "recall", "f1")}
