"""Generic CSV adapter: reading, and each validation error named by file and line."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from dicom_factory import write_dicom
from PIL import Image

from correlax.cli.main import main
from correlax.data import Manifest, ManifestError, canonical_label, load_csv

HEADER = "image_path,label,xmin,ymin,xmax,ymax,split,patient_id\n"


@pytest.fixture
def images(tmp_path):
    """Two 20x30 (h x w) PNGs in a/ and b/ with the same file name, and one DICOM."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / folder / "1-1.png")
    write_dicom(tmp_path / "c.dcm", np.zeros((50, 40), np.uint16))
    return tmp_path


def write(root, body, header=HEADER):
    path = root / "table.csv"
    path.write_text(header + body)
    return path


def test_reads_boxes_labels_and_patients(images, caplog):
    path = write(
        images,
        (
            "a/1-1.png,mass,1,2,5,6,train,p1\n"
            "a/1-1.png,Suspicious Calcification,3,4,40,8,train,p1\n"  # overhangs the 30-px width: clipped
            "b/1-1.png,no_finding,,,,,test,p2\n"
            "c.dcm,Asymmetries,10,10,20,20,val,p3\n"
            "c.dcm,Skin Retraction,,,,,val,p3\n"
        ),
    )
    with caplog.at_level(logging.WARNING):
        manifest = load_csv(path)
    assert [r.image_id for r in manifest.records] == ["a/1-1", "b/1-1", "c"]
    a, b, c = manifest.records
    assert [(f.label, f.box) for f in a.findings] == [("mass", (1, 2, 5, 6)), ("calcification", (3, 4, 30, 8))]
    assert "table.csv:3" in caplog.text and "clipped" in caplog.text
    assert [(f.label, f.box) for f in b.findings] == [("no_finding", None)]
    assert [f.label for f in c.findings] == ["asymmetry", "retraction"]
    assert (a.split, b.split, c.split) == ("train", "test", "val")
    assert (a.patient_id, c.patient_id) == ("p1", "p3")
    assert manifest.resolve(c).is_file()

    saved = images / "out" / "m.json"
    manifest.save(saved)
    again = Manifest.load(saved)
    assert again.resolve(again.records[2]) == manifest.resolve(c)


def test_minimal_columns_make_each_image_a_patient(images):
    path = write(
        images, "a/1-1.png,mass,1,1,4,4\nc.dcm,calcification,1,1,4,4\n", header="image_path,label,xmin,ymin,xmax,ymax\n"
    )
    manifest = load_csv(path)
    assert [(r.patient_id, r.split) for r in manifest.records] == [("a/1-1", None), ("c", None)]


def test_every_problem_listed_with_its_line(images):
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(images / "c.png")  # same id as c.dcm
    path = write(
        images,
        (
            "a/1-1.png,tumour,1,1,4,4,,\n"  # 2: unknown label
            "a/1-1.png,mass,5,1,4,4,,\n"  # 3: xmin >= xmax
            "a/1-1.png,mass,1,6,4,6,,\n"  # 4: ymin >= ymax
            "b/1-1.png,mass,31,1,40,4,,\n"  # 5: wholly outside the 30-px width
            "c.dcm,mass,1,1,4,4,,\n"
            "c.png,mass,1,1,4,4,,\n"  # 7: duplicate image id c
            "gone.png,mass,1,1,4,4,,\n"  # 8: missing file
        ),
    )
    with pytest.raises(ManifestError) as info:
        load_csv(path)
    problems = info.value.problems
    assert len(problems) == 6, problems
    expected = {
        2: "unknown label 'tumour'",
        3: "xmin >= xmax",
        4: "ymin >= ymax",
        5: "wholly outside",
        7: "duplicate image id 'c'",
        8: "image file not found",
    }
    for line, words in expected.items():
        assert any(p.startswith(f"{path}:{line}:") and words in p for p in problems), (line, problems)


def test_missing_files_can_be_dropped(images, caplog):
    path = write(images, "a/1-1.png,mass,1,1,4,4,,\ngone.png,mass,1,1,4,4,,\ngone.png,calcification,,,,,,\n")
    with caplog.at_level(logging.WARNING):
        manifest = load_csv(path, drop_missing=True)
    assert [r.image_id for r in manifest.records] == ["a/1-1"]
    assert manifest.missing == ["gone.png"]
    assert "gone.png" in caplog.text
    manifest.save(images / "m.json")
    assert Manifest.load(images / "m.json").missing == ["gone.png"]


def test_missing_column_and_inconsistent_rows(images):
    with pytest.raises(ManifestError, match="missing column"):
        load_csv(write(images, "a/1-1.png,mass\n", header="image_path,label\n"))
    path = write(images, "a/1-1.png,mass,1,1,4,4,train,p1\na/1-1.png,mass,1,1,4,4,test,p1\n")
    with pytest.raises(ManifestError, match=r"table.csv:3: .*split 'test' differs"):
        load_csv(path)


def test_canonical_label():
    assert canonical_label("mass") == canonical_label("Mass") == "mass"
    assert canonical_label("Focal Asymmetry") == canonical_label("Asymmetries") == "asymmetry"
    assert canonical_label(" nipple retraction ") == "retraction"
    with pytest.raises(ValueError, match="known labels"):
        canonical_label("lesion")


def test_cli_csv(images, tmp_path, capsys):
    path = write(images, "a/1-1.png,mass,1,1,4,4,train,p1\ngone.png,mass,1,1,4,4,,\n")
    assert main(["data", "csv", str(path), "--out", str(tmp_path / "m.json")]) == 1
    assert "image file not found" in capsys.readouterr().err
    assert main(["data", "csv", str(path), "--drop-missing", "--out", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "1 images, 1 patients" in out and "missing on disk (1): gone.png" in out
    assert len(Manifest.load(tmp_path / "m.json").records) == 1
