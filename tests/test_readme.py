"""README.md stays a front page: short, and every results file it cites exists and names its commit."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_front_page_is_short():
    assert len(README.splitlines()) <= 300  # the experiment logs live in docs/


def test_every_results_file_the_front_page_links_exists_and_names_its_commit():
    linked = re.findall(r"\]\((benchmarks/results/[^)#]+\.json)\)", README)
    assert len(linked) >= 4  # the cross-validation's two seeds and the speed tables
    for path in linked:
        provenance = json.loads((ROOT / path).read_text(encoding="utf-8"))["provenance"]
        assert re.fullmatch(r"[0-9a-f]{40}", provenance["commit"]) and provenance["date"], path
