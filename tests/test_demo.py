"""``correlax demo --quick`` end to end, once per module: metrics.json schema, report, reuse of finished stages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from correlax.explain.registry import list_methods

pytestmark = pytest.mark.slow  # the whole demo: data, training, explanation, report

METHODS = list_methods()

LABELS = ("mass", "calcification")  # the finding labels of the synthetic data set


def run_quick(out: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "correlax", "demo", "--quick", "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return time.perf_counter() - started, done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    seconds, stdout = run_quick(out)
    return out, seconds, stdout


def test_metrics_schema(demo):
    out, _, _ = demo
    metrics = json.loads((out / "metrics.json").read_text())
    classifier = metrics["classifier"]
    for key in ("precision", "recall", "f1", "threshold"):
        for label in LABELS:
            assert 0.0 <= classifier[key][label] <= 1.0, (key, label)
    # the block is at the model's own decision threshold (chosen on validation)
    for label in LABELS:
        chosen = metrics["classification"]["labels"][label]["at_chosen"]
        assert classifier["f1"][label] == chosen["f1"] and classifier["threshold"][label] == chosen["threshold"]
    pointing = metrics["pointing_game"]
    assert set(pointing) == set(METHODS)
    for method, block in pointing.items():
        ref, std = block["reference"], block["standard"]
        assert set(ref["per_class"]) == set(std["per_class"]) and ref["per_class"], method
        for label, entry in ref["per_class"].items():
            assert label in LABELS
            assert entry["n"] > 0 and 0 <= entry["hits"] <= entry["n"]
            assert entry["acc"] == pytest.approx(entry["hits"] / entry["n"])
        for entry in std["per_class"].values():
            assert {"hits", "n", "acc"} <= set(entry)
        n_images = block["n_images"]
        assert ref["average"] == pytest.approx(sum(e["hits"] for e in ref["per_class"].values()) / n_images)
        assert 0 <= ref["class_mean"] <= 1 and 0 <= std["class_mean"] <= 1
    assert "wall time" in metrics["run"]


def test_report_and_figures(demo):
    out, _, _ = demo
    html = (out / "report" / "report.html").read_text()
    pngs = re.findall(r'src="([^"]+\.png)"', html)
    assert pngs, "the report shows no figures"
    for rel in pngs:
        assert (out / "report" / rel).is_file(), rel


def test_second_run_reuses_finished_stages(demo):
    out, first_seconds, _ = demo
    before = json.loads((out / "metrics.json").read_text())
    model_mtime = (out / "model" / "model.safetensors").stat().st_mtime_ns
    seconds, stdout = run_quick(out)
    after = json.loads((out / "metrics.json").read_text())
    assert "making" not in stdout and "training the crop classifier" not in stdout
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == model_mtime
    assert after["classifier"] == before["classifier"]
    assert after["pointing_game"] == before["pointing_game"]
    assert seconds < max(30.0, first_seconds / 2), (seconds, first_seconds)
