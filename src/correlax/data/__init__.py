"""Data sets → one manifest of :class:`ImageRecord` s: adapters, validation and the patient-wise splitter."""

from correlax.data.mias import load_mias
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.data.split import patient_split
from correlax.data.table import load_csv
from correlax.data.validate import ManifestError, canonical_label
from correlax.data.vindr import load_vindr

__all__ = [
    "Finding",
    "ImageRecord",
    "Manifest",
    "ManifestError",
    "canonical_label",
    "load_csv",
    "load_mias",
    "load_vindr",
    "patient_split",
]
