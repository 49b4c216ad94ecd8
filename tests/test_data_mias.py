"""mini-MIAS adapter on the real development subset, and its CLI."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import require_mias
from PIL import Image

from correlax.cli.main import main
from correlax.data import Manifest, ManifestError, load_mias
from correlax.data.mias import lesion_box, parse_circle, patient_of


@pytest.fixture(scope="module")
def mias():
    """The real subset, read once for the module."""
    return load_mias(require_mias())


def test_counts(mias):
    summary = mias.summary()
    assert summary["images"] == 216
    assert summary["patients"] == 108
    assert summary["images_per_label"]["calcification"] == 16
    assert summary["images_per_label"]["mass"] == 40
    assert summary["images_per_label"]["architectural_distortion"] == 13
    assert summary["images_per_label"]["asymmetry"] == 9
    assert summary["images_per_label"]["no_finding"] == 138
    assert mias.missing == []
    assert {r.split for r in mias.records} == {None}
    assert all(r.spacing == (0.2, 0.2) for r in mias.records)


def test_pairs_and_laterality(mias):
    by_id = {r.image_id: r for r in mias.records}
    assert by_id["mdb001"].patient_id == by_id["mdb002"].patient_id
    assert by_id["mdb002"].patient_id != by_id["mdb003"].patient_id
    assert (by_id["mdb001"].laterality, by_id["mdb002"].laterality) == ("R", "L")
    patients = {}
    for r in mias.records:
        patients.setdefault(r.patient_id, []).append(r.laterality)
    assert all(sorted(v) == ["L", "R"] for v in patients.values())


def test_two_lesion_rows_give_two_findings(mias):
    by_id = {r.image_id: r for r in mias.records}
    assert len(by_id["mdb223"].findings) == 2
    assert len(by_id["mdb226"].findings) == 3
    # mdb001: X 535, Y 425 from the bottom, radius 197 -> row 1023 - 425 = 598
    assert by_id["mdb001"].findings[0].box == (338.0, 401.0, 732.0, 795.0)


def _lesion_brighter_share(records, root, undo_flip: bool) -> float:
    """Share of located lesions whose centre disc is brighter than a ring around the circle."""
    hits = total = 0
    for r in records:
        pixels = None
        for f in r.findings:
            if f.box is None:
                continue
            if pixels is None:
                pixels = np.asarray(Image.open(root / r.path), dtype=np.float32)
            xmin, ymin, xmax, ymax = f.box
            cx, cy, radius = (xmin + xmax) / 2, (ymin + ymax) / 2, (xmax - xmin) / 2
            if undo_flip:
                cy = pixels.shape[0] - 1 - cy
            yy, xx = np.ogrid[: pixels.shape[0], : pixels.shape[1]]
            d = np.hypot(yy - cy, xx - cx)
            inner = pixels[d <= max(3.0, radius / 2)]
            ring = pixels[(d > radius + 3) & (d <= 2 * radius + 6)]
            if inner.size and ring.size:
                total += 1
                hits += inner.mean() > ring.mean()
    return hits / total


def test_y_flip_puts_lesions_on_bright_tissue(mias):
    flipped = _lesion_brighter_share(mias.records, mias.root, undo_flip=False)
    unflipped = _lesion_brighter_share(mias.records, mias.root, undo_flip=True)
    assert flipped >= 0.7
    assert unflipped < flipped - 0.15


def test_missing_image_reported(tmp_path, mias_root, caplog):
    lines = (mias_root / "Info.txt").read_text().splitlines()
    rows = [line for line in lines if line.startswith("mdb")][:6]
    (tmp_path / "Info.txt").write_text("header text\n\n" + "\n".join(rows + ["mdb999 F NORM "]) + "\n")
    (tmp_path / "images").symlink_to(mias_root / "images")
    with caplog.at_level(logging.WARNING):
        manifest = load_mias(tmp_path)
    assert manifest.missing == ["mdb999"]
    assert len(manifest.records) == 6
    assert "mdb999" in caplog.text


def test_rows_without_coordinates_and_pgm(tmp_path):
    image = np.zeros((64, 48), np.uint8)
    for ref in ("mdb001", "mdb002"):
        Image.fromarray(image).save(tmp_path / f"{ref}.pgm")
    (tmp_path / "Info.txt").write_text(
        "MIAS header\nmdb001 G CALC B *NOTE 3*\nmdb002 G CIRC B\nmdb002 G CIRC M 10 5 4\n"
    )
    manifest = load_mias(tmp_path)
    by_id = {r.image_id: r for r in manifest.records}
    assert by_id["mdb001"].path == "mdb001.pgm"
    assert [(f.label, f.box) for f in by_id["mdb001"].findings] == [("calcification", None)]
    # height 64: row = 63 - 5 = 58
    assert [(f.label, f.box) for f in by_id["mdb002"].findings] == [("mass", None), ("mass", (6.0, 54.0, 14.0, 62.0))]


def test_bad_rows_raise_one_error(tmp_path):
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "mdb001.png")
    (tmp_path / "Info.txt").write_text("mdb001 G BLOB B 1 2 3\nmdb001 G CIRC B 5 6\nmdb001 G CIRC B 500 500 3\n")
    with pytest.raises(ManifestError) as info:
        load_mias(tmp_path)
    text = str(info.value)
    assert len(info.value.problems) == 3
    assert "Info.txt:1:" in text and "BLOB" in text
    assert "Info.txt:2:" in text and "Info.txt:3:" in text and "outside" in text


def test_pure_helpers():
    assert parse_circle(" B 535 425 197") == (535.0, 425.0, 197.0)
    assert parse_circle(" B *NOTE 3*") is None
    assert parse_circle("") is None
    assert lesion_box(10, 0, 2, height=100) == (8, 97, 12, 101)
    assert patient_of(1) == patient_of(2) == "mdb001" and patient_of(3) == "mdb003"


def test_cli_prints_counts(mias_root, tmp_path, capsys):
    out = tmp_path / "mias.json"
    assert main(["data", "mias", str(mias_root), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "216 images, 108 patients" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert rows["calcification"][0] == "16"
    assert rows["mass"][0] == "40"
    assert out.is_file()
    manifest = Manifest.load(out)
    assert {r.split for r in manifest.records} == {"train", "val", "test"}
    assert manifest.resolve(manifest.records[0]).is_file()
