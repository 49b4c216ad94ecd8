"""``correlax pointing-game``: explain a split's boxed images with every method, score them, write the report."""

from __future__ import annotations

import argparse
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
from correlax.cli.outputs import declare_output
from correlax.pipelines.claims import WAIT_SECONDS

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pointing-game",
        help="score heatmaps of CorRELAX and the baselines against the boxes (both protocols), write the report",
        description="Explain the images of a manifest split that carry boxes, with CorRELAX and the baseline "
        "explainers, play the Pointing Game (reference and standard protocols), and write DIR/metrics.json and "
        "DIR/report/report.html. Maps are kept in the map store DIR/maps, so an interrupted run resumes.",
    )
    p.add_argument("--model", required=True, type=Path, help="exported model (RUN/model.safetensors)")
    p.add_argument("--data", required=True, type=Path, help="manifest JSON")
    p.add_argument("--split", default="test", help="split to score (default: %(default)s)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_scoring_options(p)
    p.add_argument("--max-panels", type=int, default=24, help="per-image panels in the report (default: %(default)s)")
    p.add_argument("--skip-classifier", action="store_true", help="leave out the crop-level classifier table")
    p.add_argument("--explain-dir", type=Path,
                   help="also look up maps in the --out of an earlier 'correlax explain' (used when made from the "
                        "same file, model, spacing and settings)")  # fmt: skip
    p.add_argument("--spacing", type=float, help="pixel spacing (mm) of files that state none and whose record gives none")
    p.add_argument("--max-wait", type=float, default=WAIT_SECONDS, metavar="SECONDS",
                   help="the longest wait for a map another live worker is computing; then that image fails by name "
                        "(default: %(default).0f)")  # fmt: skip
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    add_correlax_options(p)
    p.set_defaults(func=run)
    declare_output(p)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.progress import track

    from correlax.data.records import Manifest
    from correlax.evaluation.pointing_game import format_pointing_game
    from correlax.models import CheckpointError, load_checkpoint
    from correlax.pipelines.explain_files import InputError, check_output_folder
    from correlax.pipelines.pointing_game import LocalisationJob, run_pointing_game
    from correlax.training import evaluate_checkpoint

    try:
        check_output_folder(args.out)
        model, info = load_checkpoint(args.model, map_location=args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        manifest = Manifest.load(args.data)
        spacing = info.preprocess_settings.target_spacing
        settings = correlax_settings(args, info.input_size, spacing)
        margin_px = margin_pixels(args, spacing)
        methods = scored_methods(args, settings)
    except (CheckpointError, InputError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    classification = None
    if not args.skip_classifier:
        classification = evaluate_checkpoint(args.model, args.data, args.split, cache_dir=args.out / "cache")
    run_facts = {
        "model": f"{args.model} ({info.backbone}, input {info.input_size} px)",
        "data": f"{args.data}, split {args.split}",
        "CorRELAX": f"{settings.n_masks} masks, {settings.precision}"
        + (" (fast mode)" if settings.min_tissue or settings.se_tol else ""),
    }
    job = LocalisationJob(
        model, info.preprocess_settings, manifest, manifest.split(args.split), methods, settings,
        store_dir=args.out / "maps", run=run_settings(args), explain_dir=args.explain_dir, spacing=args.spacing,
        tolerance_mm=args.tolerance_mm, margin_px=margin_px, max_panels=args.max_panels, wait_seconds=args.max_wait,
    )  # fmt: skip
    metrics, result = run_pointing_game(
        job, args.out, run_facts, f"Pointing Game — {args.data.name}, split {args.split}", classification,
        progress=lambda items: track(items, description="explaining"),
    )  # fmt: skip
    print(format_pointing_game(result.pointing_game))
    print(metrics["run"]["CorRELAX geometry"])
    print(f"metrics: {args.out / 'metrics.json'}\nreport: {args.out / 'report' / 'report.html'}")
    for message in result.repaired:
        print(f"  computed again: {message}")
    if result.failures:
        print(f"{len(result.failures)} image(s) failed:")
        for _, reason in result.failures:
            print(f"  {reason}")
        return 1
    return 0
