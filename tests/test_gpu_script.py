"""``benchmarks/gpu.sh`` dry run: its full-size part, shrunk to tiny sizes, end to end on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fullsize_part_dry_run_writes_its_json(tmp_path):
    env = {**os.environ, "DRY": "1", "PARTS": "fullsize", "OUT": str(tmp_path), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    done = subprocess.run(["bash", "benchmarks/gpu.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu-fullsize.json").read_text())
    assert set(report["summary"]) == {"exact-fp32", "exact-bf16", "cli-fast", "c2f-fast", "prediction-only"}
    assert report["config"]["targets"] == "fullsize" and report["config"]["backbone"] == "tiny"
    for mode in report["summary"].values():  # every mode beside its network alone
        assert mode["bare_passes_per_second"] > 0 and mode["engine_vs_bare"] > 0
    met = report["targets_met"]
    assert set(met["engine_vs_bare"]) == {"exact-fp32", "exact-bf16"}
    assert set(met["c2f-fast"]) == set(met["prediction-only"]) == {"seconds_per_image", "map_r", "same_pointing_game"}
    assert report["summary"]["prediction-only"]["corr_pred_map_r_mean"] is None
    assert not (tmp_path / "speed.json").exists()  # PARTS picks the parts
