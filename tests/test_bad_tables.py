"""Tables as spreadsheets write them, and damaged ones: each case read, warned about, or named by file and line."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from PIL import Image

from correlax.cli.main import main
from correlax.data import Manifest, ManifestError, load_csv, load_vindr
from test_data_vindr import write_vindr

ROWS = "a.png,mass,1,1,4,4\nb.png,calcification,2,2,6,6\n"


@pytest.fixture
def folder(tmp_path):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / name)
    return tmp_path


def table(folder, text: str, encoding: str = "utf-8", header: str = "image_path,label,xmin,ymin,xmax,ymax\n"):
    path = folder / "t.csv"
    path.write_bytes((header + text).encode(encoding))
    return path


def test_excel_utf8_bom_is_accepted(folder):
    manifest = load_csv(table(folder, ROWS, encoding="utf-8-sig"))
    assert [r.image_id for r in manifest.records] == ["a", "b"]


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separators_are_sniffed(folder, separator):
    text = (("image_path,label,xmin,ymin,xmax,ymax\n" + ROWS).replace(",", separator))
    manifest = load_csv(table(folder, text, header=""))
    assert manifest.records[1].findings[0].box == (2.0, 2.0, 6.0, 6.0)


def test_missing_columns_name_what_was_found_and_the_separator(folder):
    with pytest.raises(ManifestError, match=r"t.csv:1: missing column\(s\): xmin.*found image_path, label .*','"):
        load_csv(table(folder, "a.png,mass\n", header="image_path,label\n"))


def test_non_utf8_names_file_and_line(folder):
    path = table(folder, ROWS + "b.png,Masse d\xe9tect\xe9e,1,1,2,2\n", encoding="latin-1")
    with pytest.raises(ManifestError, match=r"t.csv:4: not UTF-8 text \(byte 0xe9\)"):
        load_csv(path)


def test_nan_coordinates_have_their_own_message(folder):
    with pytest.raises(ManifestError, match=r"t.csv:2: box coordinates must be finite numbers, got xmin=nan"):
        load_csv(table(folder, "a.png,mass,nan,1,4,4\n"))


def test_duplicate_finding_rows_warned_and_kept_once(folder, caplog):
    with caplog.at_level(logging.WARNING):
        manifest = load_csv(table(folder, ROWS + "a.png,mass,1,1,4,4\n"))
    assert len(manifest.records[0].findings) == 1
    assert "t.csv:4: image a: duplicate finding mass (1, 1, 4, 4), kept once" in caplog.text


def test_header_only_table_warns(folder, caplog):
    with caplog.at_level(logging.WARNING):
        manifest = load_csv(table(folder, ""))
    assert manifest.records == [] and "t.csv: the table has a header but no rows" in caplog.text


def test_spacing_column_and_default(folder):
    header = "image_path,label,xmin,ymin,xmax,ymax,spacing_mm\n"
    manifest = load_csv(table(folder, "a.png,mass,1,1,4,4,0.07\nb.png,mass,1,1,4,4,\n", header=header), spacing=0.2)
    assert [r.spacing for r in manifest.records] == [(0.07, 0.07), (0.2, 0.2)]
    with pytest.raises(ManifestError, match=r"t.csv:2: spacing_mm must be a positive number .*'-1'"):
        load_csv(table(folder, "a.png,mass,1,1,4,4,-1\n", header=header))
    with pytest.raises(ManifestError, match=r"t.csv:3: image a: spacing_mm 0.1 differs"):
        load_csv(table(folder, "a.png,mass,1,1,4,4,0.07\na.png,calcification,1,1,4,4,0.1\n", header=header))


def test_data_csv_spacing_option(folder, capsys):
    out = folder / "m.json"
    assert main(["data", "csv", str(table(folder, ROWS)), "--spacing", "0.2", "--out", str(out)]) == 0
    assert {r.spacing for r in Manifest.load(out).records} == {(0.2, 0.2)}
    with pytest.raises(SystemExit):
        main(["data", "csv", str(table(folder, ROWS)), "--spacing", "0", "--out", str(out)])
    assert "positive number of millimetres" in capsys.readouterr().err


def test_vindr_size_disagreeing_with_the_dicom_is_warned(tmp_path, caplog):
    root = write_vindr(tmp_path / "vindr")
    dicom = root / "images" / "s1" / "i1.dicom"
    ds = pydicom.dcmread(dicom)
    ds.Rows, ds.Columns = 204, 204
    ds.PixelData = np.zeros((204, 204), np.uint16).tobytes()
    ds.save_as(dicom)
    with caplog.at_level(logging.WARNING):
        load_vindr(root)
    assert "i1.dicom: Rows x Columns 204 x 204 in the header, but height x width 40 x 30 in the tables" in caplog.text
    assert "i2.dicom" not in caplog.text


def test_vindr_bom_and_header_only_findings(tmp_path, caplog):
    root = write_vindr(tmp_path / "vindr")
    breast = root / "breast-level_annotations.csv"
    breast.write_bytes(b"\xef\xbb\xbf" + breast.read_bytes())
    findings = root / "finding_annotations.csv"
    findings.write_text(findings.read_text().splitlines()[0] + "\n")
    with caplog.at_level(logging.WARNING):
        manifest = load_vindr(root)
    assert len(manifest.records) == 5 and "finding_annotations.csv: the table has a header but no rows" in caplog.text


def test_csv_paths_outside_the_tables_folder_are_refused_unless_allowed(tmp_path, capsys):
    inner = tmp_path / "tables"
    inner.mkdir()
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(tmp_path / "secret.png")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(inner / "a.png")
    rows = f"a.png,mass,1,1,4,4\n../secret.png,mass,1,1,4,4\n{tmp_path / 'secret.png'},mass,1,1,4,4\n{inner / 'a.png'},mass,1,1,4,4\n"
    path = table(inner, rows)
    with pytest.raises(ManifestError) as caught:
        load_csv(path)
    problems = caught.value.problems
    assert len(problems) == 2 and problems[0].startswith(f"{path}:3: image_path ../secret.png lies outside the table's folder")
    assert problems[1].startswith(f"{path}:4: image_path {tmp_path / 'secret.png'} lies outside")
    assert "--allow-outside-root" in problems[0]
    assert main(["data", "csv", str(path), "--out", str(tmp_path / "m.json")]) == 1
    assert "t.csv:3: image_path ../secret.png lies outside" in capsys.readouterr().err
    assert main(["data", "csv", str(path), "--out", str(tmp_path / "m.json"), "--allow-outside-root"]) == 0
    assert len(Manifest.load(tmp_path / "m.json").records) == 4  # one per spelling of a path
    assert len(load_csv(path, allow_outside_root=True).records) == 4


def test_vindr_ids_leading_outside_the_images_folder_are_refused_unless_allowed(tmp_path, capsys):
    from test_data_vindr import FINDINGS, IMAGES

    images = IMAGES + [("s3", "../../../escape", "L", "MLO", "training")]
    root = write_vindr(tmp_path / "vindr", images=images, findings=FINDINGS, on_disk={"i1", "i2", "i3", "i4", "i5"})
    with pytest.raises(ManifestError, match=r"breast-level_annotations.csv:7: image ../../../escape: images/s3/../../../escape.dicom lies outside"):
        load_vindr(root)
    assert main(["data", "vindr", str(root), "--out", str(tmp_path / "m.json")]) == 1
    assert "--allow-outside-root" in capsys.readouterr().err
    manifest = load_vindr(root, allow_outside_root=True)
    assert manifest.missing == ["images/s3/../../../escape.dicom"]  # read where it points (here: absent)
