"""``correlax crossval`` end to end on a small synthetic data set: 2 folds, a tiny model, few masks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from correlax.cli.main import main
from correlax.data import load_vindr
from correlax.data.records import Manifest
from correlax.data.synthetic import make_synthetic_dataset
from correlax.explain.registry import list_methods

TRAIN = [
    "--backbone", "tiny", "--pretrained", "none", "--head", "linear", "--input-size", "32", "--epochs", "2",
    "--steps-per-epoch", "4", "--train-batch-size", "16", "--crops-per-box", "4", "--crops-per-normal-image", "2",
    "--accelerator", "cpu", "--devices", "1", "--no-augment",
]  # fmt: skip
CORRELAX = ["--masks", "6", "--stride", "16", "--batch-size", "256"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("xval")
    torch.set_num_threads(1)
    manifest = load_vindr(make_synthetic_dataset(root / "data", 32, seed=0, size=192))
    manifest.save(root / "manifest.json")
    out = root / "run"
    args = ["crossval", "--data", str(root / "manifest.json"), "--folds", "2", "--out", str(out), *TRAIN, *CORRELAX]
    assert main([*args, "--json", str(root / "pooled.json")]) == 0
    return root, out, args


@pytest.mark.slow
def test_pooled_json_has_the_issue_shape(run):
    root, out, _ = run
    pooled = json.loads((out / "crossval.json").read_text())
    assert pooled == json.loads((root / "pooled.json").read_text())
    assert pooled["provenance"]["commit"]  # --json records where it came from
    assert {"config", "window_mm", "stride_mm", "margin_mm", "n_images", "classifier", "pointing_game", "paired"} <= set(pooled)
    manifest = Manifest.load(root / "manifest.json")
    boxed = {label: sum(any(f.label == label and f.box for f in r.findings) for r in manifest.records)
             for label in ("mass", "calcification")}  # fmt: skip
    assert pooled["n_images"] == boxed  # every boxed image scored once, out of fold
    assert set(pooled["classifier"]["f1"]) == set(pooled["classifier"]["auc"]) >= {"mass", "calcification"}
    assert set(pooled["pointing_game"]) == set(list_methods())
    for method, block in pooled["pointing_game"].items():
        for protocol in ("reference", "standard"):
            per_class = block[protocol]["per_class"]
            assert {k: v["n"] for k, v in per_class.items()} == boxed, (method, protocol)
            assert all(v["ci95"][0] <= v["acc"] <= v["ci95"][1] for v in per_class.values())
        assert set(pooled["paired"][method]) == {"vs_center", "vs_gradcam"} - {f"vs_{method}"}
        for test in pooled["paired"][method].values():
            assert test["wins"] + test["losses"] + test["ties"] == sum(boxed.values()) and 0 < test["p"] <= 1
    assert pooled["window_mm"] == pytest.approx(2 * pooled["stride_mm"]) and pooled["margin_mm"] == pooled["stride_mm"]
    # the folds: disjoint test patients covering everyone, each model validated without its test fold
    tested = [{r.patient_id for r in Manifest.load(out / f"fold{i}" / "manifest.json").split("test")} for i in range(2)]
    assert not tested[0] & tested[1] and tested[0] | tested[1] == {r.patient_id for r in manifest.records}
    for i in range(2):
        fold = json.loads((out / f"fold{i}" / "fold.json").read_text())
        assert fold["test_patients"] == len(tested[i]) and fold["failures"] == []


@pytest.mark.slow
def test_a_finished_fold_is_skipped(run, monkeypatch, capsys, caplog):
    root, out, args = run
    before = json.loads((out / "crossval.json").read_text())
    (out / "fold1" / "fold.json").unlink()  # fold 1 interrupted after training and explaining

    def refuse(*_, **__):
        raise AssertionError("a fold with a model was trained again")

    monkeypatch.setattr("correlax.pipelines.crossval.train", refuse)
    assert main(args) == 0
    assert "fold 0: done before, skipped" in capsys.readouterr().out
    after = json.loads((out / "crossval.json").read_text())
    assert after["pointing_game"] == before["pointing_game"] and after["classifier"] == before["classifier"]
    assert len(list((out / "cache").glob("*.npy"))) == 32  # the folds share one cache of prepared images
    assert main([*args, "--masks", "7"]) == 1  # other settings: not mixed with the folds already done
    assert "made with other settings (correlax)" in caplog.text


@pytest.mark.slow
def test_another_explanation_setting_on_the_fold_models_of_a_run(run, tmp_path, monkeypatch, caplog):
    root, out, args = run

    def refuse(*_, **__):
        raise AssertionError("a borrowed fold model was trained again")

    monkeypatch.setattr("correlax.pipelines.crossval.train", refuse)
    older = tmp_path / "older"  # a run made before a crop setting existed: its default is read in
    shutil.copytree(out, older, ignore=shutil.ignore_patterns("cache", "maps"))
    for fold_json in older.glob("fold*/fold.json"):
        fold = json.loads(fold_json.read_text())
        del fold["config"]["train"]["crops"]["normal_crops_per_boxed_image"]
        fold_json.write_text(json.dumps(fold))
    borrow = [*args, "--models-from", str(older), "--out"]  # the last --out counts
    assert main([*borrow, str(tmp_path / "finer"), "--stride", "8"]) == 0
    pooled = json.loads((tmp_path / "finer" / "crossval.json").read_text())
    before = json.loads((out / "crossval.json").read_text())
    assert pooled["config"]["models_from"] == str(older) and pooled["stride_mm"] == before["stride_mm"] / 2
    assert pooled["classifier"] == before["classifier"]  # the same models on the same held-out crops
    assert pooled["n_images"] == before["n_images"]
    assert main([*borrow, str(tmp_path / "other"), "--epochs", "3"]) == 1
    assert "trained with other options (epochs)" in caplog.text
    assert main([*borrow, str(tmp_path / "third"), "--folds", "3"]) == 1
    assert "holds out other images" in caplog.text


@pytest.mark.slow
def test_two_runs_are_paired_on_the_same_images(run):
    from benchmark_scripts import load_benchmark

    compare = load_benchmark("compare_crossval").compare
    _, out, _ = run
    pooled = json.loads((out / "crossval.json").read_text())
    same = compare(pooled, pooled)
    assert set(same["methods"]) == set(list_methods())
    for m in same["methods"].values():
        assert m["A"] == m["B"] and m["B_vs_A"]["wins"] == m["B_vs_A"]["losses"] == 0
    lever = json.loads(json.dumps(pooled))
    flipped = next(r for r in lever["outcomes"] if r["method"] == "center")
    flipped["reference_hit"] = not flipped["reference_hit"]
    test = compare(pooled, lever)["methods"]["center"]["B_vs_A"]
    assert (test["wins"], test["losses"]) == ((1, 0) if flipped["reference_hit"] else (0, 1))
    assert test["ties"] == same["methods"]["center"]["B_vs_A"]["ties"] - 1
    with pytest.raises(ValueError, match="other folds"):
        compare(pooled, {**lever, "config": {**lever["config"], "folds": 3}})
    # two maps of one run: the weighted map against the prediction map, on the same pairs
    within = compare(pooled, pooled, pair=("correlax-weighted", "correlax-prediction"))["methods"]
    assert list(within) == ["correlax-weighted vs correlax-prediction"]
    both = within["correlax-weighted vs correlax-prediction"]
    hits = {m: sum(r["reference_hit"] for r in pooled["outcomes"] if r["method"] == m)
            for m in ("correlax-weighted", "correlax-prediction")}  # fmt: skip
    assert (both["B"]["hits"], both["A"]["hits"]) == (hits["correlax-weighted"], hits["correlax-prediction"])
    assert both["B_vs_A"]["wins"] - both["B_vs_A"]["losses"] == both["B"]["hits"] - both["A"]["hits"]
    with pytest.raises(ValueError, match="not scored: gradcam-x in run B"):
        compare(pooled, pooled, pair=("gradcam-x", "center"))


def test_window_scale_crops_are_a_training_option():
    import argparse

    from correlax.cli.train import add_train_options, train_config

    parser = argparse.ArgumentParser()
    add_train_options(parser)
    parser.set_defaults(resume=False)
    window = train_config(parser.parse_args(["--input-size", "64", "--crop-scale", "window"]), "m.json", "out")
    multi = train_config(parser.parse_args(["--input-size", "64"]), "m.json", "out")
    assert window.crops["window_side"] == 64.0 and multi.crops["window_side"] is None
    assert multi.crops["normal_crops_per_boxed_image"] == 0
    negatives = train_config(parser.parse_args(["--normal-crops-per-boxed-image", "6", "--skin-crops-per-image", "3"]),
                             "m.json", "out")
    assert negatives.crops["normal_crops_per_boxed_image"] == 6 and negatives.crops["skin_crops_per_image"] == 3


@pytest.mark.slow
def test_fold_models_scored_on_either_crop_protocol(run, tmp_path):
    from benchmark_scripts import load_benchmark

    script = load_benchmark("crossval_crops")
    _, out, _ = run
    pooled = json.loads((out / "crossval.json").read_text())
    for scale in ("multi", "window"):
        assert script.main([str(out), "--crop-scale", scale, "--out", str(tmp_path / f"{scale}.json")]) == 0
    multi, window = (json.loads((tmp_path / f"{s}.json").read_text())["runs"][0] for s in ("multi", "window"))
    assert multi["folds"] == window["folds"] == 2
    assert multi["f1"] == pooled["classifier"]["f1"]  # crossval's own protocol, recomputed from the fold models
    assert multi["ci95"] == pooled["classifier"]["ci95"]  # the same patients resampled the same way
    assert window["support"] == multi["support"]  # as many crops per box and per normal image ...
    assert window["auc"] != multi["auc"]  # ... but other crops: squares of the window's side
    # one run against itself: every difference 0 in every resample
    assert script.main([str(out), str(out), "--crop-scale", "multi", "--resamples", "50", "--out", str(tmp_path / "p.json")]) == 0
    paired = json.loads((tmp_path / "p.json").read_text())["paired_against_first"][out.name]
    assert paired.keys() == set(pooled["classifier"]["f1"])
    for label, metrics in paired.items():
        assert metrics["f1"] == {"delta": 0.0, "ci95": [0.0, 0.0], "p": 1.0}, label
