"""VinDr-Mammo adapter on a tiny data set in its layout, built here with pydicom."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import write_dicom

from correlax.cli.main import main
from correlax.data import Manifest, ManifestError, load_vindr, patient_split
from correlax.data.synthetic import make_synthetic_dataset
from correlax.data.vindr import parse_categories

HEIGHT, WIDTH = 40, 30
BREAST_COLUMNS = [
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "split",
]
FINDING_COLUMNS = BREAST_COLUMNS[:9] + ["finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax", "split"]

# (study, image, laterality, view, split)
IMAGES = [
    ("s1", "i1", "L", "CC", "training"),
    ("s1", "i2", "L", "MLO", "training"),
    ("s2", "i3", "R", "CC", "test"),
    ("s2", "i4", "R", "MLO", "test"),
    ("s3", "i5", "L", "CC", "training"),
]
# (image, categories, box or None)
FINDINGS = [
    ("i1", "['Mass', 'Suspicious Calcification']", (2.0, 3.0, 10.0, 12.0)),
    ("i1", "['Focal Asymmetry']", (-2.5, 20.0, 8.0, 45.0)),  # overhangs left and bottom: clipped
    ("i2", "['No Finding']", None),
    ("i3", "['Global Asymmetry', 'Asymmetry']", (5.0, 5.0, 9.0, 9.0)),
    ("i3", "['Nipple Retraction']", None),
    ("i4", "['Skin Retraction']", (1.0, 1.0, 4.0, 4.0)),
    ("i5", "['No Finding']", None),
]


def write_vindr(root: Path, images=IMAGES, findings=FINDINGS, on_disk=None) -> Path:
    """Write the two CSVs, and DICOMs for the images in ``on_disk`` (default: all)."""
    root.mkdir(parents=True, exist_ok=True)
    info = {image: (study, lat, view, split) for study, image, lat, view, split in images}
    with (root / "breast-level_annotations.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(BREAST_COLUMNS)
        for study, image, lat, view, split in images:
            w.writerow([study, "x", image, lat, view, HEIGHT, WIDTH, "BI-RADS 1", "DENSITY B", split])
    with (root / "finding_annotations.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FINDING_COLUMNS)
        for image, categories, box in findings:
            study, lat, view, split = info[image]
            coords = list(box) if box else ["", "", "", ""]
            w.writerow(
                [study, "x", image, lat, view, HEIGHT, WIDTH, "BI-RADS 1", "DENSITY B", categories, "", *coords, split]
            )
    for study, image, lat, view, _ in images:
        if on_disk is None or image in on_disk:
            (root / "images" / study).mkdir(parents=True, exist_ok=True)
            write_dicom(
                root / "images" / study / f"{image}.dicom",
                np.zeros((HEIGHT, WIDTH), np.uint16),
                spacing=(0.1, 0.1),
                laterality=lat,
                view=view,
            )
    return root


def findings_of(manifest, image_id):
    record = next(r for r in manifest.records if r.image_id == image_id)
    return sorted((f.label, f.box) for f in record.findings)


def test_records_labels_and_splits(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        manifest = load_vindr(write_vindr(tmp_path))
    assert manifest.source == "vindr-mammo" and manifest.missing == []
    assert [r.image_id for r in manifest.records] == ["i1", "i2", "i3", "i4", "i5"]
    i1 = next(r for r in manifest.records if r.image_id == "i1")
    assert (i1.patient_id, i1.laterality, i1.view, i1.split, i1.spacing) == ("s1", "L", "CC", "train", (0.1, 0.1))
    assert manifest.resolve(i1).is_file()
    assert {r.split for r in manifest.records if r.patient_id == "s2"} == {"test"}

    # a box with two categories gives two findings on the same box; the overhanging box is clipped
    assert findings_of(manifest, "i1") == [
        ("asymmetry", (0.0, 20.0, 8.0, 40.0)),
        ("calcification", (2.0, 3.0, 10.0, 12.0)),
        ("mass", (2.0, 3.0, 10.0, 12.0)),
    ]
    assert "clipped" in caplog.text and "finding_annotations.csv:3" in caplog.text
    # Global Asymmetry + Asymmetry merge into one asymmetry; both retractions map to retraction
    assert findings_of(manifest, "i3") == [("asymmetry", (5.0, 5.0, 9.0, 9.0)), ("retraction", None)]
    assert findings_of(manifest, "i4") == [("retraction", (1.0, 1.0, 4.0, 4.0))]
    assert findings_of(manifest, "i2") == [("no_finding", None)]


def test_missing_images_dropped_and_listed(tmp_path, caplog):
    root = write_vindr(tmp_path, on_disk={"i1", "i2", "i3", "i4"})
    with caplog.at_level(logging.WARNING):
        manifest = load_vindr(root)
    assert manifest.missing == ["images/s3/i5.dicom"]
    assert len(manifest.records) == 4
    assert "missing" in caplog.text


def test_problems_named_by_file_and_line(tmp_path):
    images = IMAGES + [("s3", "i5", "L", "CC", "training")]  # duplicate image id on line 7
    findings = [
        ("i1", "['Tumour']", (1.0, 1.0, 2.0, 2.0)),  # line 2: unknown category
        ("i2", "['Mass']", (50.0, 1.0, 60.0, 5.0)),  # line 3: wholly right of the 30-px-wide image
        ("i3", "['Mass']", (9.0, 1.0, 4.0, 5.0)),  # line 4: xmin >= xmax
    ]
    root = write_vindr(tmp_path, images=images, findings=findings)
    with pytest.raises(ManifestError) as info:
        load_vindr(root)
    text = str(info.value)
    assert len(info.value.problems) == 4
    assert "breast-level_annotations.csv:7: duplicate image id i5" in text
    assert "finding_annotations.csv:2:" in text and "Tumour" in text
    assert "finding_annotations.csv:3:" in text and "outside" in text
    assert "finding_annotations.csv:4:" in text and "xmin >= xmax" in text


def test_val_carved_from_training_by_patient(tmp_path):
    manifest = load_vindr(write_vindr(tmp_path))
    records = patient_split(manifest.records, {"train": 0.5, "val": 0.5}, keep={"test"})
    splits = {r.image_id: r.split for r in records}
    assert splits["i3"] == splits["i4"] == "test"
    assert splits["i1"] == splits["i2"]
    assert {splits["i1"], splits["i5"]} == {"train", "val"}


def test_parse_categories():
    assert parse_categories("['Mass', 'Suspicious Calcification']") == ["Mass", "Suspicious Calcification"]
    assert parse_categories("No Finding") == ["No Finding"]
    with pytest.raises(ValueError):
        parse_categories("[1, 2]")


def test_cli_vindr_carves_val_and_keeps_test(tmp_path, capsys, monkeypatch):
    root = write_vindr(tmp_path / "vindr-mini")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "vindr", str(root), "--val", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "vindr-mammo: 5 images, 3 patients" in out
    manifest = Manifest.load(tmp_path / "vindr-mini-manifest.json")  # default: ROOT name, current folder
    counts = Counter(r.split for r in manifest.records)
    assert counts["test"] == 2 and counts["train"] >= 1 and counts["val"] >= 1 and counts.total() == 5
    assert manifest.resolve(manifest.records[0]).is_file()


def test_cli_synthetic_writes_manifest_in_out(tmp_path, capsys, monkeypatch):
    """The command's wiring, with the generator replaced by this module's writer."""
    import correlax.data.synthetic as synthetic

    def fake(out, n_images, seed, size):
        return write_vindr(out)

    monkeypatch.setattr(synthetic, "make_synthetic_dataset", fake, raising=False)
    assert main(["data", "synthetic", str(tmp_path / "syn"), "--images", "5", "--seed", "1", "--val", "0"]) == 0
    manifest = Manifest.load(tmp_path / "syn" / "manifest.json")
    assert len(manifest.records) == 5 and {r.split for r in manifest.records} == {"train", "test"}
    assert "synthetic: 5 images" in capsys.readouterr().out


def test_reads_the_synthetic_data_set(tmp_path):
    root = make_synthetic_dataset(tmp_path / "syn", 8, 0, size=256)
    manifest = load_vindr(root)
    assert len(manifest.records) == 8 and manifest.missing == []
    assert {r.split for r in manifest.records} <= {"train", "test"}
    assert all(r.spacing is not None for r in manifest.records)
    assert len({r.patient_id for r in manifest.records}) == 2
