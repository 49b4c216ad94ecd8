"""``correlax pointing-game`` end to end on a tiny model: metrics, report, reuse of ``correlax explain`` outputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from correlax.cli.main import main
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.explain.explainer import CorrelaxExplainer
from correlax.labels import CALCIFICATION, MASS, NO_FINDING
from correlax.models import CheckpointInfo, create_model, save_checkpoint

pytestmark = pytest.mark.slow  # explains and scores a data set end to end

FAST = ["--window", "32", "--stride", "16", "--masks", "8", "--batch-size", "64"]
METHODS = ["correlax-prediction", "correlax-correlation", "relax", "rise", "center", "random"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pg")
    torch.manual_seed(0)
    labels = (NO_FINDING, MASS, CALCIFICATION)
    ckpt = save_checkpoint(root / "tiny.safetensors", create_model("tiny", labels), CheckpointInfo(labels, "tiny", 32))
    rng = np.random.default_rng(0)
    records = []
    for i in range(3):
        img = np.zeros((80, 64), np.uint8)
        cv2.ellipse(img, (0, 40), (50, 36), 0, -90, 90, 120, -1)
        img = np.where(img > 0, img + rng.integers(0, 40, img.shape), 0).astype(np.uint8)
        cv2.circle(img, (20, 30 + 5 * i), 5, 250, -1)
        cv2.imwrite(str(root / f"img{i}.png"), img)
        findings = [Finding(MASS, (14, 24 + 5 * i, 27, 37 + 5 * i)), Finding(CALCIFICATION, (30, 50, 36, 56))]
        records.append(ImageRecord(f"img{i}", f"img{i}.png", f"p{i}", split="test", findings=findings))
    records.append(ImageRecord("gone", "gone.png", "p9", split="test", findings=[Finding(MASS, (1, 1, 5, 5))]))
    Manifest(records, root=root).save(root / "manifest.json")
    return root, ckpt


def test_pointing_game_writes_metrics_report_and_lists_failures(setup, capsys):
    root, ckpt = setup
    out = root / "pg"
    args = ["pointing-game", "--model", str(ckpt), "--data", str(root / "manifest.json"), "--out", str(out)]
    assert main([*args, "--methods", *METHODS, "--skip-classifier", *FAST]) == 1  # gone.png is missing
    printed = capsys.readouterr().out
    assert "gone.png" in printed and "1 image(s) failed" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["provenance"]["command"] and metrics["provenance"]["commit"]
    assert set(metrics["pointing_game"]) == set(METHODS)
    for block in metrics["pointing_game"].values():
        assert block["n_images"] == 3
        assert block["reference"]["per_class"][MASS]["n"] == 3
        assert 0 <= block["reference"]["average"] <= 2
        assert set(block["standard"]["per_class"][CALCIFICATION]) >= {"hits", "n", "acc", "ci95"}
    assert metrics["pointing_game"]["correlax-prediction"]["reference"]["threshold"] == 0.25
    assert metrics["pointing_game"]["center"]["reference"]["threshold"] is None
    assert (out / "report" / "report.html").exists()
    assert len(list((out / "maps").glob("*/*.npz"))) == 9  # 3 images × 3 explainers (correlax, center, random)


def test_pointing_game_reuses_explain_outputs(setup, monkeypatch):
    root, ckpt = setup
    explained = root / "explained"
    images = [str(root / f"img{i}.png") for i in range(3)]
    assert main(["explain", "--model", str(ckpt), "--out", str(explained), *images, *FAST]) == 0
    with np.load(explained / "img0.npz") as saved:
        explained_prediction = saved["prediction"]

    def refuse(*_, **__):
        raise AssertionError("CorRELAX ran again although 'correlax explain' outputs were given")

    monkeypatch.setattr(CorrelaxExplainer, "explain", refuse)
    out = root / "pg-reuse"
    args = ["pointing-game", "--model", str(ckpt), "--data", str(root / "manifest.json"), "--out", str(out)]
    main([*args, "--methods", "correlax-prediction", "--skip-classifier", "--explain-dir", str(explained), *FAST])
    assert not list((out / "maps").glob("*/*.npz"))  # every map came from the explain run's store
    scored = json.loads((out / "metrics.json").read_text())["outcomes"]
    img0 = [o for o in scored if o["image_id"] == "img0"]
    labels = (NO_FINDING, MASS, CALCIFICATION)
    peak = np.unravel_index(np.argmax(explained_prediction[labels.index(img0[0]["label"])]), explained_prediction.shape[1:])
    assert img0 and (img0[0]["y"], img0[0]["x"]) == tuple(int(v) for v in peak)


def test_maps_made_with_other_settings_are_not_reused(setup):
    root, ckpt = setup
    out = root / "pg-settings"
    args = ["pointing-game", "--model", str(ckpt), "--data", str(root / "manifest.json"), "--out", str(out)]
    common = ["--methods", "correlax-prediction", "--skip-classifier", "--window", "32", "--masks", "8"]
    main([*args, *common, "--stride", "16"])
    main([*args, *common, "--stride", "8"])
    assert len(list((out / "maps").glob("*/*.npz"))) == 6  # 3 images at each stride: nothing reused


def test_without_masks_the_default_methods_are_those_it_gives(setup, caplog):
    """``--masks 0``: by default every method but the masks' maps is scored; asking for one of those stops before any work."""
    root, ckpt = setup
    out = root / "pg-no-masks"
    args = ["pointing-game", "--model", str(ckpt), "--data", str(root / "manifest.json"), "--skip-classifier",
            *FAST[:4], "--masks", "0"]  # fmt: skip
    assert main([*args, "--out", str(root / "refused"), "--methods", "correlax-correlation", "center"]) == 2
    assert "['correlax-correlation'] need masks" in caplog.text and not (root / "refused" / "maps").exists()
    assert main([*args, "--out", str(out)]) == 1  # gone.png is missing
    scored = set(json.loads((out / "metrics.json").read_text())["pointing_game"])
    assert "correlax-prediction" in scored and "center" in scored and "gradcam" in scored
    assert not scored & {"correlax-correlation", "correlax-weighted", "relax", "rise"}
