"""The map store and the runs built on it: each defect of the old per-command caches, on a corpus made here."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from correlax.cli.main import main
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.labels import CALCIFICATION, MASS, NO_FINDING
from correlax.models import CheckpointInfo, create_model, save_checkpoint
from correlax.pipelines.map_store import EntryKey, ImageIdentity, MapStore

FAST = ["--window", "32", "--stride", "16", "--masks", "8", "--batch-size", "64"]
LABELS = (NO_FINDING, MASS, CALCIFICATION)


def breast(seed: int, lesion_y: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((72, 60), np.uint8)
    cv2.ellipse(img, (0, 36), (44, 32), 0, -90, 90, 130, -1)
    img = np.where(img > 0, img + rng.integers(0, 50, img.shape), 0).astype(np.uint8)
    if lesion_y is not None:
        cv2.circle(img, (18, lesion_y), 5, 250, -1)
    return img


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    torch.manual_seed(0)
    models = []
    for i in range(2):
        model = create_model("tiny", LABELS)
        models.append(save_checkpoint(root / f"model{i}.safetensors", model, CheckpointInfo(LABELS, "tiny", 32)))
    for folder, y in (("a", 20), ("b", 52)):  # the CBIS-DDSM layout: the same file name in two folders
        (root / "images" / folder).mkdir(parents=True)
        cv2.imwrite(str(root / "images" / folder / "1-1.png"), breast(len(folder), y))
    return root, models


def entries(folder) -> list:
    return sorted((folder / "maps").glob("*/*.npz"))


def test_same_name_in_two_folders_gives_two_results(corpus, tmp_path, capsys):
    root, (model, _) = corpus
    out = tmp_path / "out"
    assert main(["explain", "--model", str(model), "--out", str(out), str(root / "images"), *FAST]) == 0
    assert "2 explained, 0 already done" in capsys.readouterr().out
    a, b = (json.loads((out / f / "1-1.json").read_text()) for f in ("a", "b"))
    assert a["source"] != b["source"] and a["key"] != b["key"]
    assert not np.array_equal(np.load(out / "a" / "1-1.npz")["prediction"], np.load(out / "b" / "1-1.npz")["prediction"])


def test_rerun_with_other_settings_or_model_recomputes(corpus, tmp_path, capsys):
    root, (model0, model1) = corpus
    out = tmp_path / "out"
    image = str(root / "images" / "a" / "1-1.png")
    run = ["explain", "--out", str(out), image, *FAST]
    assert main([*run, "--model", str(model0)]) == 0
    capsys.readouterr()
    assert main([*run, "--model", str(model0)]) == 0
    assert "0 explained, 1 already done" in capsys.readouterr().out
    assert main([*run, "--model", str(model0), "--masks", "4"]) == 0  # other settings
    assert "1 explained" in capsys.readouterr().out
    assert json.loads((out / "1-1.json").read_text())["settings"]["n_masks"] == 4
    assert main([*run, "--model", str(model1), "--masks", "4"]) == 0  # another checkpoint, same labels
    assert "1 explained" in capsys.readouterr().out
    assert len(entries(out)) == 3
    # run knobs (batch size) do not change the numbers and do not make a new entry
    assert main([*run, "--model", str(model1), "--masks", "4", "--batch-size", "16"]) == 0
    assert "1 already done" in capsys.readouterr().out


def test_a_file_rewritten_with_the_same_bytes_keeps_its_maps_and_a_changed_one_does_not(corpus, tmp_path, capsys):
    root, (model, _) = corpus
    image = tmp_path / "film.png"
    image.write_bytes((root / "images" / "a" / "1-1.png").read_bytes())
    run = ["explain", "--model", str(model), "--out", str(tmp_path / "out"), str(image), *FAST]
    assert main(run) == 0
    capsys.readouterr()
    later = time.time() + 3600
    os.utime(image, (later, later))  # copied back or re-provisioned: same bytes, another modification time
    assert main(run) == 0
    assert "0 explained, 1 already done" in capsys.readouterr().out
    image.write_bytes((root / "images" / "b" / "1-1.png").read_bytes())  # another film under the same name
    assert main(run) == 0
    assert "1 explained" in capsys.readouterr().out


def test_pointing_game_does_not_reuse_maps_of_another_checkpoint(corpus, tmp_path):
    root, (model0, model1) = corpus
    explained = tmp_path / "explained"
    assert main(["explain", "--model", str(model0), "--out", str(explained), str(root / "images"), *FAST]) == 0
    records = [
        ImageRecord(f"{f}/1-1", f"images/{f}/1-1.png", f"p{f}", split="test", findings=[Finding(MASS, (12, y - 6, 24, y + 6))])
        for f, y in (("a", 20), ("b", 52))
    ]
    Manifest(records, root=root).save(root / "manifest.json")
    pg = ["pointing-game", "--data", str(root / "manifest.json"), "--methods", "correlax-prediction",
          "--skip-classifier", "--explain-dir", str(explained), *FAST]  # fmt: skip
    assert main([*pg, "--model", str(model0), "--out", str(tmp_path / "same")]) == 0
    assert entries(tmp_path / "same") == []  # both images came from the explain run
    assert main([*pg, "--model", str(model1), "--out", str(tmp_path / "other")]) == 0
    assert len(entries(tmp_path / "other")) == 2  # another model: computed again
    # each image scored its own map: the points differ between the a and b images
    outcomes = json.loads((tmp_path / "same" / "metrics.json").read_text())["outcomes"]
    assert {o["image_id"] for o in outcomes} == {"a/1-1", "b/1-1"}


def test_store_paths_never_leave_the_output_folder(corpus, tmp_path):
    root, (model, _) = corpus
    source = tmp_path / "readonly"
    source.mkdir()
    cv2.imwrite(str(source / "x.png"), breast(5, 30))
    records = [
        ImageRecord("../../escape", str(source / "x.png"), "p1", split="test", findings=[Finding(MASS, (12, 24, 24, 36))]),
    ]
    Manifest(records, root=root).save(tmp_path / "manifest.json")
    source.chmod(0o555)
    try:
        out = tmp_path / "out"
        args = ["pointing-game", "--model", str(model), "--data", str(tmp_path / "manifest.json"), "--out", str(out),
                "--methods", "center", "correlax-prediction", "--skip-classifier", *FAST]  # fmt: skip
        assert main(args) == 0
    finally:
        source.chmod(0o755)
    assert sorted(p.name for p in source.iterdir()) == ["x.png"]
    assert len(entries(out)) == 2 and all(out in p.parents for p in entries(out))
    assert (out / "metrics.json").exists() and (out / "report" / "report.html").exists()


def test_output_folder_inside_the_inputs_is_never_scanned(corpus, tmp_path, capsys):
    root, (model, _) = corpus
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "one.png"), breast(1, 30))
    out = images / "explained"
    for _ in range(2):
        assert main(["explain", "--model", str(model), "--out", str(out), str(images), *FAST]) == 0
    assert "0 explained, 1 already done, 0 failed" in capsys.readouterr().out
    assert main(["explain", "--model", str(model), "--out", str(out), str(out / "one_mass.png"), *FAST]) == 2
    assert "inside the output folder" in capsys.readouterr().out


def test_empty_folder_is_an_error(corpus, tmp_path, capsys):
    _, (model, _) = corpus
    (tmp_path / "empty").mkdir()
    assert main(["explain", "--model", str(model), "--out", str(tmp_path / "o"), str(tmp_path / "empty"), *FAST]) == 2
    assert "no image file" in capsys.readouterr().out


def test_unusable_output_folder_fails_before_any_compute(corpus, tmp_path, capsys):
    root, (model, _) = corpus
    image = str(root / "images" / "a" / "1-1.png")
    (tmp_path / "file").write_text("x")
    assert main(["explain", "--model", str(model), "--out", str(tmp_path / "file"), image, *FAST]) == 2
    assert "a file, not a folder" in capsys.readouterr().err  # the check every command makes (cli/outputs.py)
    # a folder that cannot be made (its parent is a file; mode bits would not stop root)
    assert main(["explain", "--model", str(model), "--out", str(tmp_path / "file" / "sub"), image, *FAST]) == 2
    assert "cannot write the outputs there" in capsys.readouterr().err


def test_devices_zero_and_negative_prefetch_are_one_clear_line(corpus, tmp_path, capsys):
    root, (model, _) = corpus
    image = str(root / "images" / "a" / "1-1.png")
    assert main(["explain", "--model", str(model), "--out", str(tmp_path / "o"), image, *FAST, "--devices", "0"]) == 2
    assert "--devices" in capsys.readouterr().out
    assert main(["explain", "--model", str(model), "--out", str(tmp_path / "o"), image, *FAST, "--prefetch", "-1"]) == 2
    assert "--prefetch must be 0" in capsys.readouterr().out


def test_outputs_are_readable_by_others_and_killed_temporaries_are_removed(corpus, tmp_path):
    root, (model, _) = corpus
    out = tmp_path / "out"
    image = str(root / "images" / "a" / "1-1.png")
    old = os.umask(0o022)
    try:
        assert main(["explain", "--model", str(model), "--out", str(out), image, *FAST]) == 0
    finally:
        os.umask(old)
    for path in [*entries(out), out / "1-1.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    orphans = [entries(out)[0].parent / ".correlax-abc.npz.123.tmp", out / ".correlax-1-1.npz.456.tmp"]
    theirs = [out / "userdir" / "sub" / ".draft.tmp", out / ".1-1.npz.456.tmp"]  # not named as correlax's
    hour_ago = time.time() - 3600
    for orphan in orphans + theirs:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"half a file")
        os.utime(orphan, (hour_ago, hour_ago))
    assert main(["explain", "--model", str(model), "--out", str(out), image, *FAST]) == 0  # already done
    assert not any(orphan.exists() for orphan in orphans)
    assert all(path.read_bytes() == b"half a file" for path in theirs)  # a user's own files stay


def test_claims_split_the_work_between_workers(tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), breast(0, 30))
    store = MapStore(tmp_path / "maps")
    key = EntryKey(ImageIdentity.of(image), "model", "correlax", {"window": 32})
    claim = store.claim(key)
    assert claim is not None and store.claim(key) is None  # a second worker finds it taken
    claim.release()
    assert store.claim(key) is not None
    # a claim whose process has died is abandoned and taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = store.path(key).with_suffix(".lock")
    lock.write_text(json.dumps({"host": os.uname().nodename, "pid": int(dead.stdout), "time": 0}))
    assert store.claim(key) is not None


@pytest.mark.slow
def test_two_concurrent_runs_compute_each_image_once(corpus, tmp_path):
    root, (model, _) = corpus
    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        cv2.imwrite(str(images / f"img{i}.png"), breast(i, 20 + 8 * i))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "correlax", "explain", "--model", str(model), "--out", str(out), str(images), *FAST,
           "--masks", "48"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    # the run that ends first while the other still makes some of its images says so, with exit status 3
    assert all(p.returncode == 0 or (p.returncode == 3 and "still being made" in o) for p, o in zip(procs, outputs)), outputs
    computed = [line for o in outputs for line in o.splitlines() if re.search(r"\] img\d: [0-9.]+ s$", line)]
    assert len(computed) == 4, outputs  # every image computed once, by one of the two runs
    assert len(entries(out)) == 4 and sorted(p.name for p in out.glob("*.json")) == [f"img{i}.json" for i in range(4)]
