"""``correlax explain``: CorRELAX maps for image files or folders (DICOM, PNG, PGM, TIFF)."""

from __future__ import annotations

import argparse
from pathlib import Path

from correlax.explain.settings import PRECISIONS, CorrelaxSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explain", help="CorRELAX heatmaps (.npz, overlay PNGs, peaks .json) for mammograms")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    p.add_argument("--model", required=True, type=Path, help="checkpoint (.safetensors or training .ckpt)")
    p.add_argument("--out", required=True, type=Path, help="output folder (images already done are skipped)")
    d = CorrelaxSettings()
    p.add_argument("--window", type=int, default=d.window, help="window side W in pixels (default: %(default)s)")
    p.add_argument("--stride", type=int, default=d.stride, help="stride S (default: %(default)s)")
    p.add_argument("--masks", type=int, default=d.n_masks, help="masks per window K (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision)
    p.add_argument("--batch-size", type=int, default=None, help="forward batch (default: fitted to the device)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--min-tissue", type=float, default=0.0, help="fast: skip windows with less breast than this fraction")
    p.add_argument("--se-tol", type=float, default=0.0, help="fast: stop a window's masks when the SE of its correlations < this")
    p.add_argument("--mask-round", type=int, default=d.mask_round, help="masks per round with --se-tol")
    p.add_argument("--devices", type=int, default=1, help="processes (GPUs or CPU workers) per node")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--accelerator", default="auto", help="auto, cpu, cuda (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from correlax.explain.batch import run_batch
    from correlax.models import CheckpointError

    try:
        settings = CorrelaxSettings(
            window=args.window, stride=args.stride, n_masks=args.masks, seed=args.seed, precision=args.precision,
            batch_size=args.batch_size, compile=args.compile, min_tissue=args.min_tissue, se_tol=args.se_tol,
            mask_round=args.mask_round,
        )
    except ValueError as e:
        print(f"correlax explain: {e}")
        return 2
    try:
        report = run_batch(args.inputs, args.out, args.model, settings, args.devices, args.num_nodes, args.accelerator)
    except CheckpointError as e:
        print(f"correlax explain: {e}")
        return 2
    print(f"{len(report.done)} explained, {len(report.skipped)} already done, {len(report.failures)} failed")
    for _, message in report.failures:
        print(f"  FAILED {message}")
    return 1 if report.failures else 0
