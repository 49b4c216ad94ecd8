"""Command-line options shared by the commands that run CorRELAX (``explain``, ``pointing-game``)."""

from __future__ import annotations

import argparse

from correlax.explain import CorrelaxSettings
from correlax.explain.settings import PRECISIONS

FAST_SE_TOL = 0.1  # the stopping rule whose loss the README reports (benchmarks/results/gpu-h200-trained-all.json)


def add_correlax_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("CorRELAX (defaults: the reference's exact settings)")
    g.add_argument("--window", type=int, help="window side in pixels (default: the model's input size)")
    g.add_argument("--stride", type=int, default=32, help="window stride in pixels (default: %(default)s)")
    g.add_argument("--masks", type=int, default=1280, help="random masks per window (default: %(default)s)")
    g.add_argument("--grid", type=int, default=8, help="mask grid cells per side (default: %(default)s)")
    g.add_argument("--keep-prob", type=float, default=0.5, help="probability that a cell is kept (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--precision", choices=PRECISIONS, help="arithmetic of the network (default: fp32; bf16 with --fast)")
    g.add_argument("--compile", action="store_true", help="torch.compile the network")
    g.add_argument("--batch-size", type=int, help="forward batch (default: fitted to the device's memory)")
    g.add_argument("--min-tissue", type=float, default=0.0,
                   help="fast mode: skip windows with less than this fraction of breast pixels")  # fmt: skip
    g.add_argument("--se-tol", type=float,
                   help="fast mode: stop drawing masks once the correlations' standard error is below this"
                        f" (default: 0, every mask; {FAST_SE_TOL} with --fast)")  # fmt: skip
    g.add_argument("--fast", action="store_true",
                   help=f"the measured fast mode: bf16 and mask stopping at --se-tol {FAST_SE_TOL}, every window"
                        " and the same stride (README: its speed-up and its loss)")  # fmt: skip
    g.add_argument("--mask-round", type=int, default=64, help="masks per round with --se-tol (default: %(default)s)")


def correlax_settings(args: argparse.Namespace, input_size: int) -> CorrelaxSettings:
    """The settings the options ask for; ``--fast`` fills in precision and ``--se-tol`` unless they are given."""
    precision = args.precision or ("bf16" if args.fast else "fp32")
    se_tol = args.se_tol if args.se_tol is not None else (FAST_SE_TOL if args.fast else 0.0)
    return CorrelaxSettings(
        window=args.window or input_size, stride=args.stride, n_masks=args.masks, grid=args.grid,
        keep_prob=args.keep_prob, seed=args.seed, precision=precision, compile=args.compile,
        batch_size=args.batch_size, min_tissue=args.min_tissue, se_tol=se_tol, mask_round=args.mask_round,
    )  # fmt: skip
