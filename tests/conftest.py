"""Shared fixtures. DICOM writing lives in ``dicom_factory.py`` so it can be imported as a plain function."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_factory import write_dicom

MIAS_ROOT = Path(__file__).resolve().parents[1].parent / "shared/data/mini-mias"


@pytest.fixture
def dicom_writer(tmp_path):
    """``dicom_writer(name, pixels, **kwargs)`` writes ``tmp_path / name`` with :func:`write_dicom`."""
    return lambda name, pixels, **kwargs: write_dicom(tmp_path / name, pixels, **kwargs)


def require_mias() -> Path:
    """The shared mini-MIAS folder; its absence fails the tests that need it (CI lays ../shared beside the clone)."""
    if not (MIAS_ROOT / "images").is_dir():
        pytest.fail(f"mini-MIAS not found at {MIAS_ROOT}: these tests need ../shared/data/mini-mias beside the repository")
    return MIAS_ROOT


@pytest.fixture
def mias_root() -> Path:
    return require_mias()
