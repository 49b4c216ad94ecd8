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
