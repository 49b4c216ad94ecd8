"""Crop-level scores of a cross-validation run's fold models on another crop protocol, out of fold.

`correlax crossval` scores each fold's model on test crops planned like its training crops, so a run trained on
window-scale crops (`--crop-scale window`) and one trained on the paper's multi-scale crops are scored on
different crops. This script scores every fold model of RUN on the held-out crops of the protocol asked for
(same seed as crossval's evaluation), pooled over the folds with each fold model's validation thresholds:

    python benchmarks/crossval_crops.py runs/xv-window --crop-scale multi --out result.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from correlax.crops import CropSettings
from correlax.data.records import Manifest
from correlax.evaluation.crossval import pool_classification
from correlax.fileio import write_json
from correlax.pipelines.crossval import EVAL_SEED
from correlax.training.predict import crop_predictions


def fold_crops(run: Path, scale: str) -> tuple[list, tuple[str, ...]]:
    """(probabilities, targets, thresholds) of each finished fold of ``run`` on its test crops of ``scale``."""
    folds, labels = [], ()
    for fold in sorted(run.glob("fold*/fold.json")):
        config = json.loads(fold.read_text())["config"]["train"]
        crops = {k: v for k, v in config["crops"].items() if k in {f.name for f in dataclasses.fields(CropSettings)}}
        crops["window_side"] = float(config["input_size"]) if scale == "window" else None
        manifest = Manifest.load(fold.parent / "manifest.json")
        pred = crop_predictions(fold.parent / "model" / "model.safetensors", manifest, manifest.split("test"),
                                config.get("cache_dir") or run / "cache", CropSettings(**crops), EVAL_SEED)  # fmt: skip
        folds.append((pred.probs, pred.targets, pred.thresholds))
        labels = pred.labels
    if not folds:
        raise SystemExit(f"{run}: no finished fold (fold*/fold.json)")
    return folds, labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the --out folder of a correlax crossval run")
    ap.add_argument("--crop-scale", choices=("multi", "window"), required=True, help="the test crops to score on")
    ap.add_argument("--out", type=Path, help="write the pooled scores here (JSON)")
    args = ap.parse_args(argv)
    folds, labels = fold_crops(args.run, args.crop_scale)
    result = {"run": args.run.name, "crop_scale": args.crop_scale, "folds": len(folds), **pool_classification(folds, labels)}
    if args.out:
        write_json(args.out, result)
    for label in labels:
        print(f"{label:<16} F1 {result['f1'][label]:.3f}  AUC {result['auc'][label] or float('nan'):.3f}  n {result['support'][label]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
