"""Training, resume, DDP and evaluation on a toy manifest of PNG mammograms written in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from correlax.cli.main import main as cli_main
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.models import load_checkpoint
from correlax.training import TrainConfig, evaluate_checkpoint, train

pytestmark = pytest.mark.slow  # trains models for minutes on a CPU

SRC = Path(__file__).resolve().parents[1] / "src"


def toy_image(rng: np.random.Generator, kind: str, size: int = 192) -> tuple[np.ndarray, list[Finding]]:
    """A grey half-disc 'breast' with smooth texture and one lesion: a bright blob (mass), a cluster of
    specks (calcification), or none."""
    yy, xx = np.mgrid[:size, :size]
    breast = (xx / (0.8 * size)) ** 2 + ((yy - size / 2) / (0.48 * size)) ** 2 < 1
    texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 4)
    img = np.where(breast, 90 + 25 * texture / (texture.std() + 1e-6), 0).astype(np.float32)
    findings = []
    if kind != "normal":
        cx, cy = rng.uniform(0.2, 0.5) * size, rng.uniform(0.3, 0.7) * size
        if kind == "mass":
            r = rng.uniform(8, 14)
            img += 70 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2)) * breast
            box = (cx - 2 * r, cy - 2 * r, cx + 2 * r, cy + 2 * r)
        else:
            pts = rng.uniform(-10, 10, (8, 2))
            for dx, dy in pts:
                cv2.circle(img, (int(cx + dx), int(cy + dy)), 1, 250, -1)
            box = (cx - 12, cy - 12, cx + 12, cy + 12)
        findings.append(Finding(kind, box))
    else:
        findings.append(Finding("no_finding"))
    return np.clip(img, 0, 255).astype(np.uint8), findings


def toy_manifest(root: Path, n_patients: int = 24, seed: int = 0) -> Path:
    """Two images per patient (one lesion kind per patient); splits by patient: ~60% train, 20% val, 20% test."""
    rng = np.random.default_rng(seed)
    records = []
    kinds = ("mass", "calcification", "normal")
    for p in range(n_patients):
        split = ("train", "train", "train", "val", "test")[p % 5]
        for v in range(2):
            img, findings = toy_image(rng, kinds[(p + v) % 3])
            name = f"images/p{p:03d}_{v}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name), img)
            records.append(ImageRecord(f"p{p}_{v}", name, f"p{p}", "L", "CC", split, findings))
    path = root / "manifest.json"
    Manifest(records, root=root, source="toy").save(path)
    return path


def toy_config(data: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(
        data=str(data), out=str(out), backbone="tiny", pretrained=False, input_size=64, epochs=3, batch_size=16,
        lr=3e-3, crops={"crops_per_box": 6, "crops_per_normal_image": 4, "normal_side_range": (16.0, 64.0)},
        accelerator="cpu", devices=1,
    )
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> Path:
    return toy_manifest(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def trained(toy_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    return train(toy_config(toy_data, out, epochs=8))


def test_tiny_model_learns_above_chance(trained, toy_data):
    model, info = load_checkpoint(trained)
    assert info.labels == ("no_finding", "mass", "calcification")
    assert info.input_size == 64 and info.backbone == "tiny"
    assert set(info.thresholds) == set(info.labels)
    report = evaluate_checkpoint(trained, toy_data, split="test")
    for label in info.labels:
        assert report["labels"][label]["support"] > 0
        assert report["labels"][label]["roc_auc"] > 0.75, (label, report["labels"][label])
    assert (trained.parent / "checkpoints" / "last.ckpt").is_file()
    assert (trained.parent / "checkpoints" / "best.ckpt").is_file()
    assert not list((trained.parent / "checkpoints").glob(".*tmp"))


def test_second_dataset_reads_the_cache_not_the_images(trained, toy_data, tmp_path):
    from correlax.crops import CropDataset, CropSettings, PreparedCache
    from correlax.preprocess import PreprocessSettings

    manifest = Manifest.load(toy_data)
    cache = PreparedCache(PreprocessSettings(), trained.parent / "cache")
    data = CropDataset(manifest, manifest.split("train") + manifest.split("val"), ("mass",), cache, 32, CropSettings())
    assert len(data) > 0
    assert cache.prepared == 0  # everything came from the .npy cache written while training


def test_evaluate_cli_writes_json_and_prints_table(trained, toy_data, tmp_path, capsys):
    out = tmp_path / "eval"
    assert cli_main(["evaluate", "--model", str(trained), "--data", str(toy_data), "--split", "test", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test" and "calcification_vs_mass" in report
    # evaluated as trained: the crops follow the protocol the checkpoint records (here No Finding sides 16-64 px,
    # not the default 64-512), with the evaluation's own counts
    assert report["crop_protocol"]["scale"] == "trained"
    assert report["crop_protocol"]["normal_side_range"] == [16.0, 64.0] and report["crop_protocol"]["crops_per_box"] == 4
    printed = capsys.readouterr().out
    assert "calcification" in printed and "F1" in printed


def _train_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "correlax", "train", "--data", str(data), "--out", str(out), "--backbone", "tiny",
        "--pretrained", "none", "--input-size", "32", "--batch-size", "8", "--crops-per-box", "2",
        "--accelerator", "cpu", *extra,
    ]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}


def _kill_after_first_checkpoint(cmd: list[str], out: Path) -> int:
    """Start the training ``cmd``, SIGKILL it as soon as OUT/checkpoints/last.ckpt exists; the step it holds."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (out / "model.safetensors").exists()
    return torch.load(last, weights_only=True, map_location="cpu")["global_step"]


def test_killed_run_resumes_to_the_same_final_step(toy_data, tmp_path):
    out = tmp_path / "run"
    cmd = _train_command(toy_data, out, "--epochs", "40", "--steps-per-epoch", "4", "--devices", "1")
    first = _kill_after_first_checkpoint(cmd, out)
    assert 0 < first < 160
    done = subprocess.run(cmd + ["--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Restoring states from the checkpoint" in done.stderr or "Restored all states" in done.stderr
    _, info = load_checkpoint(out / "model.safetensors")
    assert info.extra["global_step"] == 40 * 4


def test_two_process_ddp_on_cpu(toy_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = _train_command(toy_data, out, "--epochs", "2", "--steps-per-epoch", "3", "--devices", "2", "--strategy", "ddp")
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _, info = load_checkpoint(out / "model.safetensors")
    # each of the 2 ranks takes 3 steps per epoch on its own shard; the step counter counts per rank
    assert info.extra["global_step"] == 2 * 3
    assert "ddp" in done.stderr.lower() or "world_size" in done.stderr.lower() or "GLOBAL_RANK" in done.stderr


def test_a_killed_run_resumes_to_the_model_of_an_uninterrupted_run(toy_data, tmp_path):
    """Killed (SIGKILL) after its first checkpoint and resumed, a run ends with exactly the weights of a run
    never interrupted: each epoch's sampler order and global seeds depend on (seed, epoch) alone."""
    from safetensors.torch import load_file

    def command(out: Path) -> list[str]:
        return _train_command(toy_data, out, "--epochs", "6", "--steps-per-epoch", "3", "--devices", "1")

    whole = subprocess.run(command(tmp_path / "whole"), env=_env(), capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "killed"
    assert _kill_after_first_checkpoint(command(out), out) < 6 * 3
    resumed = subprocess.run(command(out) + ["--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, differing[:5]


def test_evaluation_crops_follow_the_training_protocol_unless_asked_otherwise():
    from types import SimpleNamespace

    from correlax.training.predict import evaluation_crops

    window_trained = SimpleNamespace(input_size=128, extra={"train": {"crops": {"window_side": 128.0, "crops_per_box": 16,
                                                                                 "normal_crops_per_boxed_image": 2, "skin_crops_per_image": 4}}})  # fmt: skip
    crops = evaluation_crops(window_trained)
    assert crops.window_side == 128.0 and crops.crops_per_box == 4 and crops.normal_crops_per_boxed_image == 0
    assert crops.skin_crops_per_image == 0  # training's hard negatives are not scored
    assert evaluation_crops(window_trained, "multi").window_side is None  # the paper's crops, when asked for
    recorded_nothing = SimpleNamespace(input_size=64, extra={})
    assert evaluation_crops(recorded_nothing).window_side is None
    assert evaluation_crops(recorded_nothing, "window").window_side == 64.0
    with pytest.raises(ValueError, match="crop scale"):
        evaluation_crops(recorded_nothing, "tiny")
