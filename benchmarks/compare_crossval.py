"""Two cross-validation runs of `correlax crossval` paired on the same (image, class) pairs.

A lever (a training or explaining setting) is measured by running the cross-validation twice, with and
without it, on the same folds: this script pairs run B (the lever) against run A (the baseline) per method,
with the exact sign test on the pairs where exactly one of the two runs hits, beside each run's crop-level F1
and AUC. Writes JSON; prints a table.

    python benchmarks/compare_crossval.py A.json B.json --names baseline window-crops --out result.json

``--pair METHOD_B METHOD_A`` pairs one method of run B against another of run A instead (the same file twice: two
maps of one run, on the same classifiers).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from correlax.evaluation.crossval import outcomes_by_method, paired_comparison
from correlax.fileio import write_json
from correlax.provenance import provenance


def compare(a: dict, b: dict, protocol: str = "reference", pair: tuple[str, str] | None = None) -> dict:
    """Per method scored in both runs: each run's hits / n and average, and B against A on the common pairs.
    With ``pair`` = (method of B, method of A): only those two, under the key "B-method vs A-method"."""
    for name, run in (("A", a), ("B", b)):
        if "outcomes" not in run:
            raise ValueError(f"run {name} has no per-image outcomes (written by correlax crossval since 2026-12)")
    if a["config"]["folds"] != b["config"]["folds"] or a["config"]["split_seed"] != b["config"]["split_seed"]:
        raise ValueError("the runs have other folds: pair runs with the same --folds and --split-seed")
    grouped_a, grouped_b = outcomes_by_method(a["outcomes"]), outcomes_by_method(b["outcomes"])
    if pair is None:
        pairs = {method: (method, method) for method in grouped_a.keys() & grouped_b.keys()}  # key: (A's, B's)
    else:
        method_b, method_a = pair
        missing = [f"{m} in run {name}" for m, name, grouped in ((method_b, "B", grouped_b), (method_a, "A", grouped_a))
                   if m not in grouped]  # fmt: skip
        if missing:
            raise ValueError(f"not scored: {', '.join(missing)}")
        pairs = {f"{method_b} vs {method_a}": (method_a, method_b)}
    methods = {}
    for key, (method_a, method_b) in pairs.items():
        own_a, own_b = grouped_a[method_a], grouped_b[method_b]
        methods[key] = {
            "A": {"method": method_a, "hits": sum(bool(r[f"{protocol}_hit"]) for r in own_a.values()), "n": len(own_a),
                  "average": a["pointing_game"][method_a][protocol].get("average")},
            "B": {"method": method_b, "hits": sum(bool(r[f"{protocol}_hit"]) for r in own_b.values()), "n": len(own_b),
                  "average": b["pointing_game"][method_b][protocol].get("average")},
            "B_vs_A": paired_comparison(own_b, own_a, protocol),
        }  # fmt: skip
    return {
        "protocol": protocol,
        "geometry_mm": {k: (a[k], b[k]) for k in ("window_mm", "stride_mm", "margin_mm")},
        "classifier": {"A": a["classifier"], "B": b["classifier"]},
        "methods": dict(sorted(methods.items())),
    }


def table(result: dict, names: tuple[str, str]) -> str:
    a, b = names
    lines = [f"| method | {a} | {b} | {b} vs {a}: wins / losses, sign test p |", "| --- | --- | --- | --- |"]
    for method, m in result["methods"].items():
        t = m["B_vs_A"]
        lines.append(f"| {method} | {m['A']['hits']}/{m['A']['n']} | {m['B']['hits']}/{m['B']['n']} | "
                     f"+{t['wins']} / −{t['losses']}, p {t['p']:.3g} |")  # fmt: skip
    for label in result["classifier"]["A"]["f1"]:
        ca, cb = result["classifier"]["A"], result["classifier"]["B"]
        lines.append(f"| crop F1 / AUC {label} | {ca['f1'][label]:.3f} / {ca['auc'][label] or 0:.3f} | "
                     f"{cb['f1'][label]:.3f} / {cb['auc'][label] or 0:.3f} | |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="crossval JSON of the baseline")
    ap.add_argument("b", type=Path, help="crossval JSON of the run with the lever")
    ap.add_argument("--names", nargs=2, default=("A", "B"), help="names of the two runs in the table")
    ap.add_argument("--protocol", choices=("reference", "standard"), default="reference")
    ap.add_argument("--pair", nargs=2, metavar=("METHOD_B", "METHOD_A"), help="pair this method of B with that of A")
    ap.add_argument("--out", type=Path, help="write the comparison here (JSON)")
    args = ap.parse_args(argv)
    pair = tuple(args.pair) if args.pair else None
    result = {"provenance": provenance(), **compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()), args.protocol, pair)}
    result["runs"] = {"A": {"name": args.names[0], "file": args.a.name}, "B": {"name": args.names[1], "file": args.b.name}}
    if args.out:
        write_json(args.out, result)
    print(table(result, tuple(args.names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
