"""benchmarks/results/: every file records its provenance, is cited by a current page or archived, and the
generated index (benchmarks/results/README.md) is up to date; every benchmark script records provenance."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
index = load_benchmark("results_index")


def test_the_generated_index_is_up_to_date():
    rows = index.entries(RESULTS, index.current_pages(ROOT))
    assert len(rows) == len(list(RESULTS.rglob("*.json")))
    assert (RESULTS / "README.md").read_text(encoding="utf-8") == index.render(rows), (
        "benchmarks/results/README.md is out of date: run python benchmarks/results_index.py"
    )


def test_every_results_file_is_current_or_archived_and_names_its_commit():
    for row in index.entries(RESULTS, index.current_pages(ROOT)):
        assert row.status in ("current", "archived"), f"{row.path}: no current page cites it; cite it or archive it"
        assert row.commit and re.fullmatch(r"[0-9a-f]{40}", row.commit), row.path
        assert row.date, row.path


def test_citations_expand_patterns_braces_and_folders():
    files = ["a-seed0.json", "a-seed1.json", "b.json", "ab/x.json", "archive/old.json"]
    page = """# Top
`a-seed*.json` and `benchmarks/results/b.json`
```bash
# not a heading
python x.py --out benchmarks/results/archive/old.json
```
## Later
`a-seed{0,1}.json`, the runs in `ab/`, and `old.json` (not at the top level: no match)
"""
    cited = index.citations({"p.md": page}, files)
    assert cited["a-seed0.json"] == [("p.md", "Top"), ("p.md", "Later")]
    assert cited["b.json"] == [("p.md", "Top")]
    assert cited["archive/old.json"] == [("p.md", "Top")]  # a heading inside a code block is no section
    assert cited["ab/x.json"] == [("p.md", "Later")]


def test_a_comparison_keeps_its_input_runs_current(tmp_path):
    (tmp_path / "run-a.json").write_text(json.dumps({"provenance": {"commit": "c" * 40}}))
    (tmp_path / "run-b.json").write_text(json.dumps({}))
    (tmp_path / "lever.json").write_text(json.dumps({"runs": {"A": {"file": "run-a.json"}, "B": {"file": "nope.json"}}}))
    rows = {r.path: r for r in index.entries(tmp_path, {"README.md": "`lever.json`"})}
    assert rows["lever.json"].status == "current"
    assert rows["run-a.json"].input_of == ["lever.json"] and rows["run-a.json"].status == "current"
    assert rows["run-b.json"].status == "not cited"


def test_every_benchmark_script_that_writes_json_records_provenance():
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        text = script.read_text(encoding="utf-8")
        if "write_json(" in text or re.search(r"write_text\(json\.dumps", text):
            assert '"provenance": provenance()' in text, f"{script.name} writes a results file without provenance"
