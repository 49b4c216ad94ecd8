"""``correlax explain`` end to end: outputs, resuming, bad files, and two CPU processes through Fabric."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from correlax.cli.main import main
from correlax.cli.options import FAST_SE_TOL, add_correlax_options, correlax_settings, run_settings
from correlax.pipelines.explain_files import collect_inputs
from correlax.labels import LABELS
from correlax.models import CheckpointInfo, create_model, save_checkpoint
from correlax.preprocess import PreprocessSettings
from correlax.report.viewer import viewer_data

FAST = ["--window", "32", "--stride", "16", "--masks", "8", "--batch-size", "64"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    torch.manual_seed(0)
    labels = LABELS[:3]
    ckpt = save_checkpoint(root / "tiny.safetensors", create_model("tiny", labels), CheckpointInfo(labels=labels, backbone="tiny"))
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = np.zeros((72, 60), np.uint8)
        cv2.ellipse(img, (10, 36), (40, 30), 0, -90, 90, 150, -1)  # a breast against the left edge
        img = np.where(img > 0, img + rng.integers(0, 60, img.shape), 0).astype(np.uint8)
        cv2.imwrite(str(images / f"img{i}.png"), img)
    (images / "broken.png").write_bytes(b"\x89PNG not really")
    return root, ckpt, images


def test_collect_inputs(setup, tmp_path):
    _, _, images = setup
    found, _ = collect_inputs([images, images / "img0.png", tmp_path / "missing.dcm"])
    assert [p.name for p, _ in found] == ["broken.png", "img0.png", "img1.png", "img2.png", "missing.dcm"]
    assert [name for _, name in found] == ["broken", "img0", "img1", "img2", "missing"]


@pytest.mark.slow
def test_explain_outputs_resume_and_failures(setup, tmp_path, capsys):
    _, ckpt, images = setup
    out = tmp_path / "out"
    assert main(["explain", "--model", str(ckpt), "--out", str(out), str(images), *FAST]) == 1
    text = capsys.readouterr().out
    assert "3 explained" in text and "1 failed" in text and "broken.png" in text
    for i in range(3):
        z = np.load(out / f"img{i}.npz")
        assert z["prediction"].shape == (3, 72, 60) and z["corr_pred"].shape == (3, 72, 60)
        assert z["relax"].shape == (72, 60) and z["rise"].shape == (3, 72, 60)
        assert z["window_prediction"].shape[0] == 3
        peaks = json.loads((out / f"img{i}.json").read_text())["peaks"]
        assert set(peaks["prediction"]) == set(LABELS[:3]) and {"x", "y", "value"} <= set(peaks["relax"])
        for label in LABELS[:3]:
            assert cv2.imread(str(out / f"img{i}_{label}.png")) is not None
    assert not list(out.glob(".*.tmp"))  # atomic writes leave nothing behind
    # a second run skips the images already done and still reports the bad file
    assert main(["explain", "--model", str(ckpt), "--out", str(out), str(images), *FAST]) == 1
    assert "0 explained, 3 already done, 1 failed" in capsys.readouterr().out


def test_spacing_option_lets_a_resampling_model_read_png(setup, tmp_path, capsys):
    _, _, images = setup
    labels = LABELS[:3]
    settings = PreprocessSettings(target_spacing=0.4).to_dict()
    ckpt = save_checkpoint(
        tmp_path / "resampling.safetensors", create_model("tiny", labels), CheckpointInfo(labels, "tiny", preprocess=settings)
    )
    png = str(images / "img0.png")
    out = tmp_path / "out"
    assert main(["explain", "--model", str(ckpt), "--out", str(out), png, *FAST]) == 1  # PNG states no spacing
    assert "pixel spacing unknown" in capsys.readouterr().out
    assert main(["explain", "--model", str(ckpt), "--out", str(out), png, *FAST, "--spacing", "0.2"]) == 0
    assert np.load(out / "img0.npz")["prediction"].shape == (3, 36, 30)  # 0.2 mm → 0.4 mm halves each side


def test_missing_checkpoint_is_a_clear_error(setup, tmp_path, capsys):
    images = setup[2]
    assert main(["explain", "--model", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path), str(images)]) == 2
    assert "nope.safetensors" in capsys.readouterr().out


@pytest.mark.slow
def test_two_cpu_processes_share_the_images(setup, tmp_path):
    root, ckpt, images = setup
    out = tmp_path / "out"
    inputs = [str(images / f"img{i}.png") for i in range(3)] + [str(images / "broken.png")]
    cmd = [sys.executable, "-m", "correlax", "explain", "--model", str(ckpt), "--out", str(out), *inputs, *FAST,
           "--devices", "2", "--accelerator", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.glob("*.json")) == ["img0.json", "img1.json", "img2.json"]
    assert "broken.png" in proc.stdout  # rank 1's failure is reported by rank 0
    assert not list(out.glob(".failures-*"))


def test_fast_option_fills_in_only_what_is_not_given():
    parser = argparse.ArgumentParser()
    add_correlax_options(parser)

    def settings(*argv: str, gpu: bool = True):
        return correlax_settings(parser.parse_args(list(argv)), input_size=64, gpu=gpu)

    exact = settings()
    assert (exact.precision, exact.se_tol, exact.window) == ("fp32", 0.0, 64)  # the reference's arithmetic
    fast = settings("--fast")
    assert (fast.precision, fast.se_tol, fast.stride, fast.min_tissue) == ("bf16", FAST_SE_TOL, exact.stride, 0.0)
    assert settings("--fast", gpu=False).precision == "fp32"  # no bf16 units on a CPU: fp32 is the fast one there
    assert (settings("--fast", "--precision", "fp32", "--se-tol", "0.05").precision,
            settings("--fast", "--se-tol", "0.05").se_tol) == ("fp32", 0.05)  # fmt: skip
    run = run_settings(parser.parse_args(["--batch-size", "16", "--backend", "onnx"]))
    assert (run.batch_size, run.backend, run.compile) == (16, "onnx", False)  # run knobs stay out of the settings
    assert "batch_size" not in fast.to_dict() and "backend" not in fast.to_dict()


def test_geometry_in_millimetres():
    parser = argparse.ArgumentParser()
    add_correlax_options(parser)

    def settings(*argv: str, spacing=0.4):
        return correlax_settings(parser.parse_args(list(argv)), input_size=128, spacing=spacing)

    assert (settings().window, settings().stride) == (128, 16)  # the reference's W/S = 8 by default
    paper = settings("--window-mm", "25.6", "--stride-mm", "3.2")
    assert (paper.window, paper.stride) == (64, 8)
    assert settings("--window-mm", "25.6", spacing=0.2).window == 128
    with pytest.raises(ValueError, match="pixel spacing"):
        settings("--window-mm", "25", spacing=None)
    from correlax.pipelines.pointing_game import geometry_mm

    g = geometry_mm(paper, 8, [(0.4, 0.4), (0.4, 0.4)])
    assert g["window_mm"] == pytest.approx(25.6) and g["stride_mm"] == pytest.approx(3.2) and g["margin_mm"] == pytest.approx(3.2)


def test_peaks_are_given_in_the_source_files_pixels(setup, tmp_path):
    _, _, images = setup
    labels = LABELS[:3]
    ckpt = save_checkpoint(
        tmp_path / "resampling.safetensors", create_model("tiny", labels),
        CheckpointInfo(labels, "tiny", preprocess=PreprocessSettings(target_spacing=0.4).to_dict()),
    )  # fmt: skip
    out = tmp_path / "out"
    assert main(["explain", "--model", str(ckpt), "--out", str(out), str(images / "img0.png"), *FAST, "--spacing", "0.2"]) == 0
    summary = json.loads((out / "img0.json").read_text())
    assert summary["grid"]["spacing_mm"] == [0.4, 0.4]
    for peak in summary["peaks"]["prediction"].values():
        assert peak["source_x"] in (2 * peak["x"], 2 * peak["x"] + 1) and peak["source_y"] in (2 * peak["y"], 2 * peak["y"] + 1)


def test_progress_is_logged_when_not_on_a_terminal(caplog):
    import io
    import logging

    from correlax.pipelines.progress import ImageProgress

    progress = ImageProgress("film.dcm", log_every=0.0, stream=io.StringIO())
    with caplog.at_level(logging.INFO):
        progress.update(250, 1000)
    assert "film.dcm: 250/1000 forward passes (25 %)" in caplog.text and "left" in caplog.text


@pytest.mark.slow
def test_the_next_image_is_read_while_one_is_explained(setup, tmp_path):
    import threading

    from correlax.explain import CorrelaxExplainer, CorrelaxSettings
    from correlax.models import load_checkpoint
    from correlax.preprocess import load_prepared

    _, ckpt, images = setup
    model, info = load_checkpoint(ckpt)
    explainer = CorrelaxExplainer(model, CorrelaxSettings(window=32, stride=16, n_masks=4))
    inputs = [(images / f"img{i}.png", f"img{i}") for i in range(3)]
    second_read = threading.Event()

    def load(path):
        if path.name == "img1.png":
            second_read.set()
        return load_prepared(path, info.preprocess_settings)

    entry = explainer.entry

    def explain_after_the_next_read(*args, **kwargs):
        assert second_read.wait(10), "img1 was not read while img0 was explained"
        return entry(*args, **kwargs)

    explainer.entry = explain_after_the_next_read
    from correlax.pipelines.explain_files import explain_files
    from correlax.pipelines.map_store import ModelKey

    report = explain_files(inputs, tmp_path / "ahead", explainer, ModelKey("m"), load, say=lambda _: None, prefetch_depth=1)
    assert len(report.done) == 3 and not report.failures
    assert 0 < report.busy_fraction() <= 1 and report.explain_seconds <= report.wall_seconds
    # reading one after the other gives the same maps
    explainer.entry = entry
    plain = explain_files(inputs, tmp_path / "plain", explainer, ModelKey("m"), load, say=lambda _: None, prefetch_depth=0)
    assert len(plain.done) == 3, (plain.failures, plain.skipped, plain.elsewhere)
    for i in range(3):
        a, b = np.load(tmp_path / "ahead" / f"img{i}.npz"), np.load(tmp_path / "plain" / f"img{i}.npz")
        np.testing.assert_array_equal(a["prediction"], b["prediction"])


def test_without_masks_the_outputs_hold_the_prediction_map_alone(setup, tmp_path):
    """``--masks 0``: one pass per window; the store entry, peaks, overlays and viewer have the prediction map only."""
    _, ckpt, images = setup
    out = tmp_path / "out"
    fast = [*FAST[:4], "--masks", "0", *FAST[6:]]
    assert main(["explain", "--model", str(ckpt), "--out", str(out), str(images / "img0.png"), *fast]) == 0
    z = np.load(out / "img0.npz")
    assert z["prediction"].shape == (3, 72, 60) and "corr_pred" not in z.files and "relax" not in z.files
    assert (z["window_masks"] == 0).all()
    assert set(json.loads((out / "img0.json").read_text())["peaks"]) == {"prediction"}
    for label in LABELS[:3]:
        assert cv2.imread(str(out / f"img0_{label}.png")) is not None
    assert main(["view", str(out)]) == 0
    (image,) = viewer_data(out / "index.html")["images"]
    assert sorted(o["label"] for o in image["overlays"]) == sorted(LABELS[:3])
    assert {o["method"] for o in image["overlays"]} == {p["method"] for p in image["peaks"]} == {"correlax-prediction"}


@pytest.mark.timeout(120)
def test_fifo_and_endless_device_are_passed_over_by_name(setup, tmp_path, capsys):
    """A FIFO named pipe.dcm and a link to /dev/zero, in a folder and given by name: listed, never opened
    (no hang, no endless hashing); the named ones make the exit status 1."""
    _, ckpt, images = setup
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "img0.png").write_bytes((images / "img0.png").read_bytes())
    os.mkfifo(folder / "pipe.dcm")
    (folder / "zero.dcm").symlink_to("/dev/zero")
    assert main(["explain", "--model", str(ckpt), "--out", str(tmp_path / "a"), str(folder), *FAST]) == 0
    text = capsys.readouterr().out
    assert "1 explained" in text and "pipe.dcm: not a regular file (a FIFO" in text and "zero.dcm: not a regular" in text
    named = [str(folder / "pipe.dcm"), str(folder / "zero.dcm"), str(folder / "img0.png")]
    assert main(["explain", "--model", str(ckpt), "--out", str(tmp_path / "b"), *named, *FAST]) == 1
    text = capsys.readouterr().out
    assert "1 explained" in text and "pipe.dcm" in text and "zero.dcm" in text
