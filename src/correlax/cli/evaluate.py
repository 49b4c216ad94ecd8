"""``correlax evaluate``: crop-level precision, recall, F1 and ROC-AUC of a saved model on a manifest split."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from correlax.cli.data import SPACING_HELP, millimetres
from correlax.cli.outputs import declare_output, report_skipped
from correlax.settings import CROP_SCALES

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="crop-level metrics of a trained model on a manifest split",
        description="Cut crops from the split's images as in training (fixed seed, no augmentation), classify them, "
        "and report per-label precision/recall/F1 at 0.5 and at the thresholds chosen on validation, ROC-AUC, "
        "support, and the calcification-versus-mass confusion. Writes OUT/metrics.json.",
    )
    p.add_argument("--model", required=True, help="exported model (.safetensors) or training checkpoint (.ckpt)")
    p.add_argument("--data", required=True, help="manifest JSON")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cache-dir", help="folder of prepared images shared with training (optional)")
    p.add_argument("--crop-scale", choices=CROP_SCALES, default="trained",
                   help="crops as the model was trained (default: the protocol its checkpoint records), the paper's "
                        "multi-scale crops, or squares near the model's input side (window)")  # fmt: skip
    p.add_argument("--crops-per-box", type=int, default=4)
    p.add_argument("--crops-per-normal-image", type=int, default=4)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--spacing", type=millimetres, help=SPACING_HELP + " where the manifest states none either")
    p.set_defaults(func=run)
    declare_output(p)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from correlax.fileio import write_json
    from correlax.evaluation.classification import format_report
    from correlax.models import CheckpointError, load_checkpoint
    from correlax.training import evaluate_checkpoint
    from correlax.training.predict import evaluation_crops

    try:
        _, info = load_checkpoint(args.model)
        crops = evaluation_crops(info, args.crop_scale, args.crops_per_box, args.crops_per_normal_image)
        report = evaluate_checkpoint(
            args.model, args.data, args.split, args.cache_dir, crops, args.seed, args.batch_size, args.spacing
        )
    except (CheckpointError, ValueError) as e:
        log.error("%s", e)
        return 1
    report["crop_protocol"] = {"scale": args.crop_scale, **asdict(crops)}
    out = Path(args.out)
    write_json(out / "metrics.json", report)
    print(format_report(report))
    print(f"metrics: {out / 'metrics.json'}")
    return report_skipped(report["failures"])
