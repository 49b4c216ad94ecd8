"""``benchmarks/bench_engine.py`` end to end on tiny settings: the JSON it writes, with and without a checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from benchmark_scripts import load_benchmark

from correlax.data import load_vindr
from correlax.data.synthetic import make_synthetic_dataset
from correlax.labels import LABELS
from correlax.models import CheckpointInfo, create_model, save_checkpoint

TINY = ["--window", "32", "--stride", "8", "--n-masks", "8", "--mask-round", "4", "--plain-windows", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_engine")


@pytest.mark.slow
def test_random_init_on_mini_mias(bench, mias_root, tmp_path):
    out = tmp_path / "cpu.json"
    assert bench.main([*TINY, "--data", str(mias_root), "--n-images", "1", "--scale", "0.0625", "--modes", "fast",
                       "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["provenance"]["commit"] and report["provenance"]["machine"]["cores"] >= 1
    assert set(report["summary"]) == {"exact-fp32", "fast"}  # the reference of the agreement always runs
    fast = report["summary"]["fast"]
    assert fast["passes_per_image_mean"] < report["summary"]["exact-fp32"]["passes_per_image_mean"]
    assert -1 <= fast["prediction_map_r_mean"] <= 1
    assert 0 <= fast["pointing_game_same_outcome_own_margin"] <= 1
    agreement = report["images"][0]["modes"]["fast"]["agreement"]
    assert len(agreement["pointing_game_flips"]) == round((1 - agreement["pointing_game_same"]) * agreement["pointing_game_compared"])
    assert set(report["targets_met"]) == {"fast"}  # the exact-mode target counts on a GPU only
    assert set(report["targets_met"]["fast"]) == {"fast_speedup_vs_plain", "fast_map_r", "fast_same_pointing_game"}
    assert any("random-init" in note for note in report["notes"])


@pytest.mark.slow
def test_checkpoint_images_saved_and_reused(bench, tmp_path):
    root = make_synthetic_dataset(tmp_path / "data", 8, size=160, test_fraction=0.5, normal_fraction=0.0)
    manifest = load_vindr(root)
    manifest.save(tmp_path / "manifest.json")
    torch.manual_seed(0)
    info = CheckpointInfo(labels=LABELS, backbone="tiny", input_size=32)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny", LABELS), info)
    npz = tmp_path / "images.npz"
    base = ["--checkpoint", str(ckpt), "--n-images", "2", "--images-npz", str(npz)]
    assert bench.main([*base, "--manifest", str(tmp_path / "manifest.json"), "--save-images"]) == 0
    out = tmp_path / "trained.json"
    assert bench.main([*base, *TINY, "--modes", "exact-bf16", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_images"] == 2
    assert {row["id"] for row in report["images"]} <= {r.image_id for r in manifest.split("test")}
    assert report["summary"]["exact-bf16"]["pointing_game_same_outcome"] is not None
    assert not any("random-init" in note for note in report["notes"])
    # the same saved films feed the engine's host-work probe
    host = tmp_path / "host.json"
    probe = load_benchmark("engine_host")
    assert probe.main(["--checkpoint", str(ckpt), "--images-npz", str(npz), "--n-images", "1", "--stride", "8",
                       "--n-masks", "4", "--batch-size", "8", "--backend", "torch", "--threads", "1", "--rounds", "2",
                       "--out", str(host)]) == 0  # fmt: skip
    measured = json.loads(host.read_text())
    assert measured["provenance"]["commit"]
    assert len(measured["host_cpu_ms_per_batch"]["rounds"]) == 2
    assert measured["host_cpu_ms_per_batch"]["min"] > 0 and measured["network_cpu_ms_per_batch"]["min"] > 0
    assert 0 < measured["host_share_of_cpu"] < 1


def test_unknown_mode_is_named(bench, mias_root, tmp_path):
    with pytest.raises(SystemExit, match="exact-fp16"):
        bench.main([*TINY, "--data", str(mias_root), "--n-images", "1", "--scale", "0.0625",
                    "--modes", "exact-fp16", "--out", str(tmp_path / "x.json")])  # fmt: skip


def test_film_targets_with_onnx_reference_and_coarse_to_fine(bench, mias_root, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "film.json"
    assert bench.main([*TINY, "--data", str(mias_root), "--n-images", "1", "--scale", "0.0625", "--modes",
                       "cli-fast,c2f-fast-onnx,exact-other-masks", "--reference-backend", "onnx", "--bare-only", "exact-fp32-torch",
                       "--bare-seconds", "0.1", "--targets", "film", "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["modes"]["exact-fp32"]["backend"] == "onnx" and report["modes"]["c2f-fast-onnx"]["coarse_stride"] == 16
    assert "exact-fp32-torch (bare only)" in report["bare_network"]["passes_per_second"]
    summary = report["summary"]
    assert summary["c2f-fast-onnx"]["passes_per_image_mean"] < summary["exact-fp32"]["passes_per_image_mean"]
    other = report["modes"]["exact-other-masks"]  # the reference redrawn: same windows and backend, the next seed
    assert other["seed"] == report["modes"]["exact-fp32"]["seed"] + 1 and other["backend"] == "onnx"
    assert summary["exact-other-masks"]["prediction_map_r_mean"] == pytest.approx(1.0, abs=1e-5)  # unmasked windows
    assert summary["exact-other-masks"]["corr_pred_map_r_mean"] < 0.999
    assert summary["exact-fp32"]["engine_vs_bare"] > 0
    for mode in ("exact-fp32", "c2f-fast-onnx"):  # the network timed beside each image, and inside the engine
        entry = report["images"][0]["modes"][mode]
        assert entry["bare_passes_per_second"] > 0 and 0 < entry["network_seconds"] < entry["seconds"]
        assert summary[mode]["bare_passes_per_second"] == entry["bare_passes_per_second"]  # one image: its rate
        assert 0 < summary[mode]["network_time_share"] < 1
    met = report["targets_met"]
    assert set(met["c2f-fast-onnx"]) == {"seconds_per_image", "map_r", "same_pointing_game"}
    assert met["some_fast_mode_meets_all"] == any(all(met[m].values()) for m in ("cli-fast", "c2f-fast-onnx"))


def test_prediction_only_mode_is_scored_on_its_one_map(bench, mias_root, tmp_path):
    pytest.importorskip("openvino")
    out = tmp_path / "film.json"
    assert bench.main([*TINY, "--data", str(mias_root), "--n-images", "1", "--scale", "0.0625", "--modes",
                       "prediction-only-openvino-bf16", "--bare-seconds", "0.1", "--targets", "film", "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    alone, exact = report["summary"]["prediction-only-openvino-bf16"], report["summary"]["exact-fp32"]
    assert report["modes"]["prediction-only-openvino-bf16"]["n_masks"] == 0
    assert alone["passes_per_image_mean"] * 9 == exact["passes_per_image_mean"]  # one pass per window instead of 1 + 8
    assert alone["windows_run_fraction"] == 1 and alone["corr_pred_map_r_mean"] is None
    assert alone["prediction_map_r_mean"] > 0.95  # bf16 against fp32, the same windows
    met = report["targets_met"]
    assert met["prediction-only-openvino-bf16"]["map_r"] == (alone["prediction_map_r_mean"] >= 0.95)
    assert met["some_fast_mode_meets_all"] is False  # a mode without a correlation map never counts for it
    assert met["prediction_only_mode_meets_all"] == all(met["prediction-only-openvino-bf16"].values())


def test_cpu_backends_side_by_side(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    info = CheckpointInfo(labels=LABELS[:3], backbone="tiny", input_size=32)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny", LABELS[:3]), info)
    out = tmp_path / "backends.json"
    script = load_benchmark("cpu_backends")
    assert script.main(["--checkpoint", str(ckpt), "--batch-size", "8", "--threads", "1", "--seconds", "0.05",
                        "--rounds", "2", "--out", str(out)]) == 0  # fmt: skip
    report = json.loads(out.read_text())
    assert report["provenance"]["commit"]
    rates = report["passes_per_second"]
    assert {"pytorch fp32 channels-last", "onnxruntime fp32"} <= set(rates)
    assert all(len(r["rounds"]) == 2 and r["median"] > 0 for r in rates.values())
    diff = report["max_abs_probability_difference_vs_pytorch_fp32"]
    assert diff["pytorch fp32 channels-last"] == 0 and diff["onnxruntime fp32"] < 1e-4
