"""``correlax crossval``: K patient-wise folds, one model per fold, pooled out-of-fold crop metrics and Pointing Game."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from correlax.cli.options import (
    add_correlax_options,
    add_scoring_options,
    correlax_settings,
    margin_pixels,
    run_settings,
    scored_methods,
)
from correlax.cli.outputs import declare_output, report_skipped
from correlax.cli.train import add_train_options, train_config

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "crossval",
        help="cross-validate: per patient-wise fold train, evaluate crops, explain and score; pool out-of-fold",
        description="Split the manifest's images patient-wise into K folds. Per fold: train on the other folds "
        "(validation patients carved out of them choose the checkpoint and thresholds), evaluate crops of the "
        "held-out fold, explain its boxed images with every method and play the Pointing Game. Pool the "
        "out-of-fold results into OUT/crossval.json: crop-level F1/AUC per label, Pointing Game per method with "
        "Wilson intervals, and paired sign tests against center and gradcam. A fold already done is skipped.",
    )
    p.add_argument("--data", required=True, help="manifest JSON (its splits are ignored: every image is in one fold)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the fold assignment (default: %(default)s)")
    p.add_argument("--out", required=True, type=Path, help="output folder (one sub-folder per fold)")
    p.add_argument("--json", type=Path, help="also write the pooled result here (e.g. benchmarks/results/NAME.json)")
    add_scoring_options(p)
    p.add_argument("--models-from", type=Path, metavar="RUN",
                   help="explain the fold models of an earlier crossval RUN (same folds, same training options) instead "
                        "of training: another explanation setting on the same classifiers")  # fmt: skip
    p.add_argument("--device", help="where the models explain: cpu, cuda, cuda:1 ... (default: cuda when available)")
    add_train_options(p.add_argument_group("training (per fold)"), prefix="train-")
    add_correlax_options(p)
    p.set_defaults(func=run, resume=True)
    declare_output(p)


def run(args: argparse.Namespace) -> int:
    from correlax.fileio import write_json
    from correlax.pipelines.crossval import CrossvalConfig, run_crossval

    try:
        train = train_config(args, args.data, str(args.out))
        spacing = args.target_spacing
        settings = correlax_settings(args, args.input_size, spacing)
        config = CrossvalConfig(
            out=args.out, folds=args.folds, train=train, settings=settings, methods=scored_methods(args, settings),
            margin_px=margin_pixels(args, spacing), tolerance_mm=args.tolerance_mm, split_seed=args.split_seed,
            device=args.device, run=run_settings(args), models_from=args.models_from,
        )  # fmt: skip
        pooled = run_crossval(config)
    except (ValueError, RuntimeError, OSError) as exc:
        log.error("%s", exc)
        return 1
    if args.json:
        write_json(args.json, pooled)
    print(summary_table(pooled))
    print(f"result: {args.out / 'crossval.json'}" + (f" and {args.json}" if args.json else ""))
    return report_skipped(crossval_failures(args.out, pooled))


def crossval_failures(out: Path, pooled: dict) -> list[dict]:
    """Every image a fold skipped: in training (its model's validation.json, when trained here), evaluation or
    explanation; each named with its fold."""
    from correlax.training import skipped_images

    failures = []
    for fold in pooled["folds"]:
        run_dir = out / f"fold{fold['fold']}" / "model"
        trained = skipped_images(run_dir) if (run_dir / "validation.json").is_file() else []
        failures += [f | {"reason": f"fold {fold['fold']}: {f['reason']}"} for f in trained + fold["failures"]]
    return failures


def summary_table(pooled: dict) -> str:
    """Crop-level F1/AUC (with patient-bootstrap intervals where kept) and, per method, the pooled
    reference-protocol Pointing Game and the paired tests."""
    c = pooled["classifier"]
    ci = c.get("ci95", {})

    def score(metric: str, label: str) -> str:
        lo_hi = ci.get(metric, {}).get(label)
        return _num(c[metric][label]) + (f" ({_num(lo_hi[0])}-{_num(lo_hi[1])})" if lo_hi else "")

    lines = ["out-of-fold crops: " + ", ".join(f"{k} F1 {score('f1', k)} AUC {score('auc', k)}" for k in c["f1"])]
    if "f1_at_cross_fold_threshold" in c:
        lines.append("F1 at thresholds chosen on the other folds' out-of-fold crops: "
                     + ", ".join(f"{k} {score('f1_at_cross_fold_threshold', k)}" for k in c["f1"]))  # fmt: skip
    geometry = ", ".join(f"{k} {_num(pooled[k], 1)}" for k in ("window_mm", "stride_mm", "margin_mm"))
    lines.append(f"{geometry}; images per class {json.dumps(pooled['n_images'])}")
    for method, block in pooled["pointing_game"].items():
        ref = block["reference"]
        per = ", ".join(f"{k} {v['hits']}/{v['n']}" for k, v in ref["per_class"].items())
        tests = ", ".join(f"{k} +{t['wins']}/-{t['losses']} p={t['p']:.3g}" for k, t in pooled["paired"][method].items())
        lines.append(f"{method:<22} average {_num(ref['average'])}  class mean {_num(ref['class_mean'])}  {per}  {tests}")
    return "\n".join(lines)


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"
