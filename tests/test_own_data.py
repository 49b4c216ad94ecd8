"""README's "Your own data in three commands", run as written on a tiny generated CSV data set.

The commands are read from the README itself, so the front page cannot drift from what works: only the
paths are pointed at a temporary folder and tiny settings are appended (argparse keeps the last value).
"""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from correlax.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Your own data in three commands"

TINY = {  # appended to the README's command of the same name
    "data": [],
    "train": ["--backbone", "tiny", "--pretrained", "none", "--input-size", "32", "--epochs", "1",
              "--steps-per-epoch", "2", "--batch-size", "8", "--crops-per-box", "2", "--crops-per-normal-image", "1"],
    "explain": ["--batch-size", "256", "--prefetch", "0"],
    "view": [],
}  # fmt: skip
SPACING_MM = 0.1  # as in the README's example (its explain command says --spacing 0.1); train resamples to 0.2 mm
IMAGES = [  # (file, label, box or None, split, patient)
    ("p01_L_CC.png", "mass", (60, 80, 100, 120), "train", "p01"),
    ("p01_L_MLO.png", "mass", (70, 60, 110, 100), "train", "p01"),
    ("p02_R_CC.png", "no_finding", None, "train", "p02"),
    ("p03_L_CC.png", "mass", (50, 100, 90, 140), "train", "p03"),
    ("p04_R_MLO.png", "no_finding", None, "train", "p04"),
    ("p05_L_CC.png", "mass", (64, 70, 104, 110), "val", "p05"),
    ("p06_R_CC.png", "no_finding", None, "val", "p06"),
]


def readme_blocks() -> tuple[list[str], list[list[str]]]:
    """The section's CSV header and its commands (one argv each, comments dropped)."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    header = re.search(r"```text\n([^\n]+)\n", section).group(1).split(",")
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in bash.splitlines() if line.strip()]
    return header, commands


def write_data_set(folder: Path, header: list[str]) -> None:
    """Films with a breast against the left edge and, on lesion films, a bright mass in the box."""
    images = folder / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for name, label, box, split, patient in IMAGES:
        img = np.zeros((200, 160), np.uint8)
        cv2.ellipse(img, (0, 100), (140, 90), 0, -90, 90, 110, -1)
        img = np.where(img > 0, img + rng.integers(0, 50, img.shape), 0).astype(np.uint8)
        if box:
            x0, y0, x1, y1 = box
            cv2.circle(img, ((x0 + x1) // 2, (y0 + y1) // 2), (x1 - x0) // 3, 230, -1)
        cv2.imwrite(str(images / name), img)
        coords = [str(v) for v in box] if box else [""] * 4
        values = dict(zip(("xmin", "ymin", "xmax", "ymax"), coords))
        values.update(image_path=f"images/{name}", label=label, split=split, patient_id=patient, spacing_mm=str(SPACING_MM))
        rows.append([values[column] for column in header])
    with open(folder / "boxes.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])


@pytest.mark.slow
def test_the_readme_own_data_commands_run_as_written(tmp_path, monkeypatch):
    header, commands = readme_blocks()
    assert header[:6] == ["image_path", "label", "xmin", "ymin", "xmax", "ymax"]
    assert [c[:2] for c in commands] == [["correlax", "data"], ["correlax", "train"], ["correlax", "explain"],
                                         ["correlax", "view"]]  # fmt: skip
    write_data_set(tmp_path / "my-data", header)
    monkeypatch.chdir(tmp_path)  # the README's relative paths (my-data/, runs/mine/) land here

    for command in commands:
        argv = command[1:] + TINY[command[1]]
        assert main(argv) == 0, f"README command failed: {shlex.join(command)}"

    manifest = json.loads(Path("runs/mine/manifest.json").read_text())
    assert len(manifest["records"]) == len(IMAGES)
    assert Path("runs/mine/model/model.safetensors").is_file()
    maps = Path("runs/mine/maps")
    for name, *_ in IMAGES:  # every film explained, each with its prediction map
        stem = Path(name).stem
        assert (maps / f"{stem}.npz").is_file(), sorted(p.name for p in maps.iterdir())
        assert list(maps.glob(f"{stem}_*.png")), stem
    assert "<html" in (maps / "index.html").read_text().lower()
