"""``correlax pointing-game``: explain a split's boxed images with every method, score them, write the report."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from correlax.cli.options import add_correlax_options, correlax_settings

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    from correlax.evaluation.localisation import METHODS

    p = subparsers.add_parser(
        "pointing-game",
        help="score heatmaps of CorRELAX and the baselines against the boxes (both protocols), write the report",
        description="Explain the images of a manifest split that carry boxes, with CorRELAX and the baseline "
        "explainers, play the Pointing Game (reference and standard protocols), and write DIR/metrics.json and "
        "DIR/report/report.html. Maps are cached in DIR/maps, so an interrupted run resumes.",
    )
    p.add_argument("--model", required=True, type=Path, help="exported model (RUN/model.safetensors)")
    p.add_argument("--data", required=True, type=Path, help="manifest JSON")
    p.add_argument("--split", default="test", help="split to score (default: %(default)s)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, metavar="METHOD",
                   help=f"methods to score (default: all: {', '.join(METHODS)})")  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--tolerance-mm", type=float, help="standard protocol tolerance in mm instead of 15 px")
    p.add_argument("--max-panels", type=int, default=24, help="per-image panels in the report (default: %(default)s)")
    p.add_argument("--skip-classifier", action="store_true", help="leave out the crop-level classifier table")
    p.add_argument("--explain-dir", type=Path, help="reuse the CorRELAX maps 'correlax explain' wrote there (same settings)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    add_correlax_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.progress import track

    from correlax.data.records import Manifest
    from correlax.fileio import atomic_write_text
    from correlax.evaluation.localisation import classifier_summary, explain_and_score
    from correlax.evaluation.pointing_game import format_pointing_game
    from correlax.models import CheckpointError, load_checkpoint
    from correlax.report import write_report
    from correlax.training import evaluate_checkpoint

    try:
        model, info = load_checkpoint(args.model, map_location=args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        manifest = Manifest.load(args.data)
        settings = correlax_settings(args, info.input_size)
    except (CheckpointError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    metrics: dict = {
        "title": f"Pointing Game — {args.data.name}, split {args.split}",
        "run": {
            "model": f"{args.model} ({info.backbone}, input {info.input_size} px)",
            "data": f"{args.data}, split {args.split}",
            "CorRELAX": f"window {settings.window}, stride {settings.stride}, {settings.n_masks} masks, "
            f"{settings.precision}" + (" (fast mode)" if settings.min_tissue or settings.se_tol else ""),
        },
    }
    if not args.skip_classifier:
        report = evaluate_checkpoint(args.model, args.data, args.split, cache_dir=args.out / "cache")
        metrics["classifier"] = classifier_summary(report)
        metrics["classification"] = report
    result = explain_and_score(
        model, info.preprocess_settings, manifest, manifest.split(args.split), args.methods, settings,
        cache_dir=args.out / "maps", max_panels=args.max_panels, tolerance_mm=args.tolerance_mm,
        progress=lambda items: track(items, description="explaining"), explain_dir=args.explain_dir,
    )  # fmt: skip
    metrics["pointing_game"] = result.pointing_game
    metrics["failures"] = [{"path": p, "reason": r} for p, r in result.failures]
    atomic_write_text(args.out / "metrics.json", json.dumps(metrics, indent=1))
    html = write_report(args.out / "report", metrics, result.panels)
    print(format_pointing_game(result.pointing_game))
    print(f"metrics: {args.out / 'metrics.json'}\nreport: {html}")
    if result.failures:
        print(f"{len(result.failures)} image(s) failed:")
        for _, reason in result.failures:
            print(f"  {reason}")
        return 1
    return 0

