"""Crop-level scores of cross-validation runs' fold models on one crop protocol, out of fold, with paired tests.

`correlax crossval` scores each fold's model on test crops planned like its training crops, so a run trained on
window-scale crops (`--crop-scale window`) and one trained on the paper's multi-scale crops are scored on
different crops. This script scores every fold model of each RUN on the held-out crops of the protocol asked for
(same seed as crossval's evaluation), pooled over the folds with each fold model's validation thresholds, with
95 % intervals from a bootstrap over patients. With two or more runs (same folds), each later run is paired
against the first: the difference of F1 and AUC per label, resampling the same patients in both runs (their
crops may differ: another resolution cuts the same millimetres into other pixels).

    python benchmarks/crossval_crops.py runs/xv-long runs/xv-r02-long --crop-scale window --out result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from correlax.crops import CropSettings
from correlax.data.records import Manifest
from correlax.evaluation.crossval import FoldCrops, PooledCrops, paired_crop_scores, pool_classification
from correlax.fileio import write_json
from correlax.provenance import provenance
from correlax.pipelines.crossval import EVAL_SEED
from correlax.training.predict import crop_predictions


def fold_crops(run: Path, scale: str) -> tuple[list[FoldCrops], tuple[str, ...]]:
    """Each finished fold of ``run`` scored on its test crops of ``scale``, with every crop's patient."""
    folds, labels = [], ()
    for fold in sorted(run.glob("fold*/fold.json")):
        config = json.loads(fold.read_text())["config"]["train"]
        crops = {k: v for k, v in config["crops"].items() if k in {f.name for f in dataclasses.fields(CropSettings)}}
        crops["window_side"] = float(config["input_size"]) if scale == "window" else None
        manifest = Manifest.load(fold.parent / "manifest.json")
        test = manifest.split("test")
        pred = crop_predictions(fold.parent / "model" / "model.safetensors", manifest, test,
                                config.get("cache_dir") or run / "cache", CropSettings(**crops), EVAL_SEED)  # fmt: skip
        folds.append(FoldCrops(pred.probs, pred.targets, pred.thresholds, pred.patients(test)))
        labels = pred.labels
    if not folds:
        raise SystemExit(f"{run}: no finished fold (fold*/fold.json)")
    return folds, labels


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+", help="the --out folders of correlax crossval runs (same folds)")
    ap.add_argument("--crop-scale", choices=("multi", "window"), required=True, help="the test crops to score on")
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the patients")
    ap.add_argument("--out", type=Path, help="write the pooled scores here (JSON)")
    args = ap.parse_args(argv)
    scored = [fold_crops(run, args.crop_scale) for run in args.runs]
    labels = scored[0][1]
    if any(own != labels for _, own in scored):
        raise SystemExit("the runs' models have other labels: " + "; ".join(", ".join(own) for _, own in scored))
    pooled = [PooledCrops.of(folds, labels) for folds, _ in scored]
    result = {
        "provenance": provenance(),
        "crop_scale": args.crop_scale,
        "runs": [
            {"run": run.name, "folds": len(folds), **pool_classification(folds, labels, args.resamples)}
            for run, (folds, _) in zip(args.runs, scored)
        ],
        "paired_against_first": {
            run.name: paired_crop_scores(pooled[0], own, labels, args.resamples)
            for run, own in zip(args.runs[1:], pooled[1:])
        },
    }
    if args.out:
        write_json(args.out, result)
    for run in result["runs"]:
        for label in labels:
            lo_hi = {m: run["ci95"][m][label] for m in ("f1", "auc")}
            scores = "  ".join(f"{m} {_num(run[m][label])} ({_num(lo_hi[m][0])}-{_num(lo_hi[m][1])})" for m in lo_hi)
            print(f"{run['run']:<24} {label:<14} {scores}  n {run['support'][label]}")
    for name, per_label in result["paired_against_first"].items():
        for label, metrics in per_label.items():
            deltas = [
                f"d{m} {_num(v['delta'])} ({_num(v['ci95'][0])}..{_num(v['ci95'][1])}) p {_num(v['p'])}"
                for m, v in metrics.items()
            ]
            print(f"{name} vs {args.runs[0].name}, {label}: {'  '.join(deltas)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
