"""The record type produced by every data-set adapter, and the manifest file that holds them."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from correlax.geometry import AnnotationBox
from correlax.fileio import write_json
from correlax.labels import LABELS, check_label


MANIFEST_VERSION = 1


@dataclass
class Finding:
    """One label of an image, with its box in stored-image pixels or None for an image-level label."""
    label: str
    box: AnnotationBox | None = None  # None: image-level label without a location

    def __post_init__(self) -> None:
        check_label(self.label)
        if self.box is not None:
            self.box = tuple(float(v) for v in self.box)  # type: ignore[assignment]


@dataclass
class ImageRecord:
    """One image of a data set: its file, patient, view, split, pixel spacing and findings."""
    image_id: str
    path: str  # absolute, or relative to the manifest's directory
    patient_id: str
    laterality: str | None = None
    view: str | None = None
    split: str | None = None  # "train", "val", "test"
    findings: list[Finding] = field(default_factory=list)
    spacing: tuple[float, float] | None = None  # mm, when the data set states it

    @property
    def labels(self) -> set[str]:
        return {f.label for f in self.findings}

    @property
    def is_normal(self) -> bool:
        return not self.findings or self.labels == {"no_finding"}


@dataclass
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
        """Read a manifest written by :meth:`save`; an unreadable file raises ValueError naming it."""
        path = Path(path)
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable manifest ({e})") from e
        if payload.get("version") != MANIFEST_VERSION:
            raise ValueError(f"{path}: manifest version {payload.get('version')!r}, expected {MANIFEST_VERSION}")
        records = []
        for i, r in enumerate(payload["records"]):
            try:
                findings = [Finding(f["label"], tuple(f["box"]) if f["box"] else None) for f in r.pop("findings")]
                spacing = tuple(r.pop("spacing")) if r.get("spacing") else None
                r.pop("spacing", None)
                records.append(ImageRecord(**r, findings=findings, spacing=spacing))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}: record {i}: {e}") from e
        return cls(
            records=records,
            root=(path.parent / payload.get("root", ".")).resolve(),
            source=payload.get("source", ""),
            missing=list(payload.get("missing", [])),
        )
