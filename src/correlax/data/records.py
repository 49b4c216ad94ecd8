"""The record type produced by every data-set adapter, and the manifest file that holds them.

:class:`Finding` and :class:`ImageRecord` are pydantic dataclasses: the schema of a manifest's records is the
types below, checked when a manifest is read (:meth:`Manifest.load`) and whenever a record is made.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Literal

import pydantic
from pydantic import ConfigDict, Field, field_validator
from pydantic.dataclasses import dataclass

from correlax.data.problems import ManifestError, box_problem
from correlax.fileio import not_a_regular_file, write_json
from correlax.labels import LABELS, check_label


MANIFEST_VERSION = 1

Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # a finite number, not a string
Millimetres = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
_RECORD_CONFIG = ConfigDict(extra="forbid")


@dataclass(config=_RECORD_CONFIG)
class Finding:
    """One label of an image, with its box in stored-image pixels or None for an image-level label."""
    label: str
    box: tuple[Coordinate, Coordinate, Coordinate, Coordinate] | None = None  # xmin, ymin, xmax, ymax; None: no location

    @field_validator("label")
    @classmethod
    def _known_label(cls, label: str) -> str:
        return check_label(label)

    @field_validator("box")
    @classmethod
    def _ordered(cls, box: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        problem = box and box_problem(box, None)
        if problem:
            raise ValueError(problem)
        return box


@dataclass(config=_RECORD_CONFIG)
class ImageRecord:
    """One image of a data set: its file, patient, view, split, pixel spacing and findings."""
    image_id: str
    path: str  # absolute, or relative to the manifest's directory
    patient_id: str
    laterality: str | None = None
    view: str | None = None
    split: Literal["train", "val", "test"] | None = None
    findings: list[Finding] = field(default_factory=list)
    spacing: tuple[Millimetres, Millimetres] | None = None  # mm (row, column), when the data set states it

    @property
    def labels(self) -> set[str]:
        return {f.label for f in self.findings}

    @property
    def is_normal(self) -> bool:
        return not self.findings or self.labels == {"no_finding"}


class ManifestFile(pydantic.BaseModel):
    """The JSON a manifest is saved as."""

    version: Literal[1]
    source: str = ""
    root: str = "."
    records: list[ImageRecord]
    missing: list[str] = []


@dataclasses.dataclass
class Manifest:
    """A data set as the other commands read it: image records with paths relative to ``root``."""
    records: list[ImageRecord]
    root: Path = Path(".")  # paths in records are relative to this
    source: str = ""
    missing: list[str] = field(default_factory=list)  # images the source lists but that were not found

    def resolve(self, record: ImageRecord) -> Path:
        """The file of ``record``: its path as is when absolute, else under the manifest's root."""
        p = Path(record.path)
        return p if p.is_absolute() else self.root / p

    def split(self, name: str) -> list[ImageRecord]:
        """The records of split ``name`` (train, val or test)."""
        return [r for r in self.records if r.split == name]

    def summary(self) -> dict:
        """Counts for the command-line summary: images, patients, images and boxes per label."""
        images_per_label: Counter[str] = Counter()
        boxes_per_label: Counter[str] = Counter()
        for r in self.records:
            images_per_label.update(r.labels or {"no_finding"})
            boxes_per_label.update(f.label for f in r.findings if f.box is not None)
        return {
            "images": len(self.records),
            "patients": len({r.patient_id for r in self.records}),
            "splits": dict(Counter(r.split or "none" for r in self.records)),
            "images_per_label": {k: images_per_label[k] for k in LABELS if images_per_label[k]},
            "boxes_per_label": {k: boxes_per_label[k] for k in LABELS if boxes_per_label[k]},
        }

    def save(self, path: str | Path) -> None:
        """Write atomically as JSON; record paths are stored relative to the manifest's folder."""
        path = Path(path)
        payload = {
            "version": MANIFEST_VERSION,
            "source": self.source,
            "root": os.path.relpath(self.root.resolve(), path.parent.resolve()),
            "records": [asdict(r) for r in self.records],
            "missing": self.missing,
        }
        write_json(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        """Read and validate a manifest; every problem is named by file, record (index and image id) and field.

        Raises:
            ManifestError: not readable, not JSON, or not a valid manifest (a ValueError).
        """
        path = Path(path)
        special = not_a_regular_file(path)
        if special:
            raise ManifestError([f"{path}: not a readable manifest ({special})"])
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ManifestError([f"{path}: not a readable manifest ({e})"]) from e
        try:
            parsed = ManifestFile.model_validate(payload)
        except pydantic.ValidationError as e:
            raise ManifestError([_schema_problem(path, payload, error) for error in e.errors()]) from None
        return cls(
            records=parsed.records,
            root=(path.parent / parsed.root).resolve(),
            source=parsed.source,
            missing=parsed.missing,
        )


def _schema_problem(path: Path, payload: object, error: dict) -> str:
    """'FILE: record I (image ID): field F: what' for one pydantic error (the top-level field when not a record's)."""
    loc = list(error["loc"])
    where = str(path)
    if len(loc) >= 2 and loc[0] == "records" and isinstance(loc[1], int):
        index = loc[1]
        record = payload["records"][index] if isinstance(payload, dict) else None
        image_id = record.get("image_id") if isinstance(record, dict) else None
        where += f": record {index}" + (f" (image {image_id!r})" if image_id is not None else "")
        loc = loc[2:]
    name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    given = repr(error["input"])
    given = given if len(given) <= 60 else given[:57] + "..."
    if error["type"] == "model_type":  # the top level is not an object
        return f"{where}: a manifest is a JSON object (version, source, root, records, missing), got {given}"
    what = error["msg"] + (f", got {given}" if error["type"] != "missing" else "")
    return f"{where}: {'field ' + name + ': ' if name else ''}{what}"
