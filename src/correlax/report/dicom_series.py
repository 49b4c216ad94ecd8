"""Where the DICOM outputs go: one series per kind of object, per run and study.

Every image of a study explained in one run shares the series of each kind, so a 4-view exam shows four
series (maps, findings, presentation states, overlays), not four per image. The series UID is derived from
the run and the study (no state shared between images or workers); instance numbers come from the image's
place in the run, so they stay distinct within a series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from pydicom.uid import generate_uid

import correlax

NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSTIC USE"
DEVICE = {"manufacturer": "correlax", "manufacturer_model_name": "correlax",
          "software_versions": correlax.__version__, "device_serial_number": "0"}  # fmt: skip


@dataclass(frozen=True)
class SeriesKind:
    """The number and description every series of one kind of output has."""

    number: int
    description: str


SERIES: dict[str, SeriesKind] = {
    "pm": SeriesKind(901, "CorRELAX maps (Parametric Map)"),
    "sr": SeriesKind(902, "CorRELAX findings (SR)"),
    "gsps": SeriesKind(903, "CorRELAX findings (presentation state)"),
    "overlay": SeriesKind(904, f"CorRELAX heatmap overlays {NOT_FOR_DIAGNOSIS}"),
}


class Series(NamedTuple):
    """One series of the run: what each object written into it states."""

    uid: str
    number: int
    description: str


@dataclass(frozen=True)
class SeriesPlan:
    """``run_key``: the same text for every image of a run (e.g. output folder, model and settings);
    ``image_number``: the image's place in the run, from 1."""

    run_key: str
    image_number: int = 1

    @classmethod
    def single(cls) -> SeriesPlan:
        """Series of their own, for an export outside a run."""
        return cls(run_key=generate_uid())

    def series(self, study_uid: str, kind: str) -> Series:
        """The run's series of ``kind`` (a key of :data:`SERIES`) in the study."""
        uid = generate_uid(entropy_srcs=[self.run_key, study_uid, kind])
        return Series(uid, SERIES[kind].number, SERIES[kind].description)

    def instance_number(self, per_image: int, index: int = 1) -> int:
        """The ``index``-th (from 1) of the ``per_image`` objects of a kind this image has."""
        return (self.image_number - 1) * per_image + index
