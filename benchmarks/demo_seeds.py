"""The demo over seeds: each method's Pointing Game per seed and its mean and range, from the runs' metrics.json.

    correlax demo --seed 0 --out runs/demo; correlax demo --seed 1 --out runs/demo-s1; ...
    python benchmarks/demo_seeds.py runs/demo runs/demo-s1 runs/demo-s2 --out benchmarks/results/demo-seeds.json

Seeded runs differ between CPUs, so one seed misleads; the JSON keeps every seed's figures and each run's own
provenance beside the summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from correlax.fileio import write_json
from correlax.provenance import provenance

FIGURES = ("average", "class_mean")


def seed_row(metrics: dict) -> dict:
    """One run: its provenance (whose command names the seed), and per method the reference protocol's average,
    class mean and hits."""
    methods = {}
    for method, block in metrics["pointing_game"].items():
        ref = block["reference"]
        methods[method] = {"average": ref["average"], "class_mean": ref["class_mean"],
                           "hits": {label: [c["hits"], c["n"]] for label, c in ref["per_class"].items()}}  # fmt: skip
    return {"provenance": metrics.get("provenance"), "methods": methods}


def summarise(rows: list[dict]) -> dict:
    """Per method and figure: mean, min and max over the seeds; and per seed whether each map beats ``center``."""
    methods = rows[0]["methods"].keys()
    summary = {m: {f: {"mean": float(np.mean(v := [r["methods"][m][f] for r in rows])), "min": min(v), "max": max(v)}
                   for f in FIGURES} for m in methods}  # fmt: skip
    above = {m: [r["methods"][m]["average"] > r["methods"]["center"]["average"] for r in rows]
             for m in methods if m != "center" and "center" in rows[0]["methods"]}  # fmt: skip
    return {"methods": summary, "above_center_per_seed": above}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="demo output folders (each holds metrics.json)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows = [seed_row(json.loads((run / "metrics.json").read_text())) for run in args.runs]
    report = {"provenance": provenance(), "runs_summarised": [str(run) for run in args.runs], **summarise(rows), "runs": rows}
    write_json(args.out, report)
    print("| method | reference average | reference class mean | above `center` per seed |")
    print("| --- | --- | --- | --- |")
    for m, s in report["methods"].items():
        cells = [f"{s[f]['mean']:.3f} ({s[f]['min']:.3f}–{s[f]['max']:.3f})" for f in FIGURES]
        above = report["above_center_per_seed"].get(m)
        print(f"| {m} | {cells[0]} | {cells[1]} | {'–' if above is None else ' / '.join('yes' if a else 'no' for a in above)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
