"""find_images: folders searched by content, outputs never taken, what was skipped said, empty folders an error."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from correlax.io import NoImagesFound, find_images  # noqa: E402
from correlax.io.discovery import OUTPUT_MARKER  # noqa: E402
from dicom_factory import write_dicom  # noqa: E402


def grey_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    return path


@pytest.fixture
def corpus(tmp_path):
    """in/: a DICOM named by its UID (suffix ".7"), one .dcm in a sub-folder, a PNG, notes, a matplotlib figure, a hidden
    temporary file, an output folder (out/) and a folder marked as correlax output (old/)."""
    root = tmp_path / "in"
    (root / "series").mkdir(parents=True)
    write_dicom(root / "1.2.840.10008.7", np.zeros((8, 8), np.uint16))
    write_dicom(root / "series" / "1-1.dcm", np.zeros((8, 8), np.uint16))
    grey_png(root / "scan.png")
    (root / "notes.txt").write_text("read me")
    figure, axes = plt.subplots(figsize=(1, 1))
    figure.savefig(root / "overlay.png")
    plt.close(figure)
    (root / ".scan.png.123.tmp").write_bytes(b"\x89PNG partial")
    grey_png(root / "out" / "scan_mass.png")
    grey_png(root / "old" / "scan_mass.png")
    (root / "old" / OUTPUT_MARKER).write_text("")
    return root


def test_folder_search_by_content_with_reasons(corpus):
    files, skipped = find_images([corpus], exclude=[corpus / "out"])
    assert [f.relative_to(corpus).as_posix() for f in files] == ["1.2.840.10008.7", "scan.png", "series/1-1.dcm"]
    assert pydicom.dcmread(files[0]).Rows == 8
    reasons = {p.relative_to(corpus).as_posix(): why for p, why in skipped}
    assert reasons["notes.txt"].startswith("not a DICOM")
    assert "figure" in reasons["overlay.png"]
    assert reasons[".scan.png.123.tmp"] == "hidden file"
    assert "outputs" in reasons["out"] and "outputs" in reasons["old"]
    assert not any(p.is_relative_to(corpus / "out") and p != corpus / "out" for p, _ in skipped)


def test_files_given_are_taken_as_they_are_once(corpus, tmp_path):
    missing = tmp_path / "absent.dcm"
    files, skipped = find_images([corpus / "notes.txt", missing, corpus / "scan.png", corpus / "scan.png"])
    assert files == [corpus / "notes.txt", missing, corpus / "scan.png"] and skipped == []


def test_empty_folder_and_folder_without_images_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoImagesFound, match="empty.*the folder is empty"):
        find_images([tmp_path / "empty"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.csv").write_text("x\n")
    with pytest.raises(NoImagesFound, match=r"docs: no DICOM, PNG, TIFF or PGM file found \(1 skipped: a.csv"):
        find_images([tmp_path / "docs"])
