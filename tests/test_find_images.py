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


@pytest.fixture
def special_files(tmp_path):
    """in/: one PNG, a FIFO named pipe.dcm, a symlink zero.dcm to /dev/zero, a socket, and a symbolic link to a
    folder outside (two images) plus a link loop back to in/."""
    import os
    import socket

    root = tmp_path / "in"
    grey_png(root / "scan.png")
    os.mkfifo(root / "pipe.dcm")
    (root / "zero.dcm").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.dcm"))
    grey_png(tmp_path / "elsewhere" / "a.png")
    grey_png(tmp_path / "elsewhere" / "b.png")
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "linked-again").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    yield root
    sock.close()


@pytest.mark.timeout(20)
def test_fifos_devices_and_sockets_are_skipped_by_name_never_opened(special_files):
    files, skipped = find_images([special_files])
    names = [f.relative_to(special_files).as_posix() for f in files]
    assert sorted(names) == ["linked/a.png", "linked/b.png", "scan.png"]
    reasons = {p.relative_to(special_files).as_posix(): why for p, why in skipped}
    assert "FIFO" in reasons["pipe.dcm"] and "character device" in reasons["zero.dcm"] and "socket" in reasons["sock.dcm"]
    assert "already searched" in reasons["linked-again"] and "already searched" in reasons["loop"]


@pytest.mark.timeout(20)
def test_special_files_given_by_name_are_skipped_and_refused_by_the_reader(special_files):
    from correlax.io import ImageReadError, read_image

    files, skipped = find_images([special_files / "pipe.dcm", special_files / "zero.dcm", special_files / "scan.png"])
    assert files == [special_files / "scan.png"]
    assert [p.name for p, _ in skipped] == ["pipe.dcm", "zero.dcm"]
    for name in ("pipe.dcm", "zero.dcm"):
        with pytest.raises(ImageReadError, match=f"{name}.*not a regular file"):
            read_image(special_files / name)
