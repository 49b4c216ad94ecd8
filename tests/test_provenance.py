"""Every results file names its commit, date, machine and command (``correlax.provenance``)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

from correlax.provenance import provenance


def test_provenance_names_commit_date_machine_and_command():
    p = provenance(["correlax", "crossval", "--folds", "5"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert p["commit"] == head
    assert isinstance(p["dirty"], bool)
    assert dt.datetime.fromisoformat(p["date"]).tzinfo is not None
    assert p["machine"]["cores"] >= 1 and p["machine"]["cpu"]
    assert p["libraries"]["numpy"] and p["libraries"]["correlax"]
    assert p["command"] == "correlax crossval --folds 5"
    json.dumps(p, allow_nan=False)  # strict JSON


def test_a_rewritten_results_file_leaves_the_tree_clean_and_a_changed_source_does_not(tmp_path):
    import subprocess

    from correlax.provenance import git_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "benchmarks" / "results" / "r.json").write_text("{}")
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert git_state(tmp_path / "src")["dirty"] is False
    (tmp_path / "benchmarks" / "results" / "r.json").write_text('{"a": 1}')
    assert git_state(tmp_path / "src")["dirty"] is False
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert git_state(tmp_path / "src")["dirty"] is True
