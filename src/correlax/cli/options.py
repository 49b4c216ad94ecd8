"""Command-line options shared by the commands that run CorRELAX (``explain``, ``pointing-game``)."""

from __future__ import annotations

import argparse

from correlax.explain import CorrelaxSettings
from correlax.explain.settings import PRECISIONS


def add_correlax_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("CorRELAX (defaults: the reference's exact settings)")
    g.add_argument("--window", type=int, help="window side in pixels (default: the model's input size)")
    g.add_argument("--stride", type=int, default=32, help="window stride in pixels (default: %(default)s)")
    g.add_argument("--masks", type=int, default=1280, help="random masks per window (default: %(default)s)")
    g.add_argument("--grid", type=int, default=8, help="mask grid cells per side (default: %(default)s)")
    g.add_argument("--keep-prob", type=float, default=0.5, help="probability that a cell is kept (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--precision", choices=PRECISIONS, default="fp32", help="arithmetic of the network (default: fp32)")
    g.add_argument("--compile", action="store_true", help="torch.compile the network")
    g.add_argument("--batch-size", type=int, help="forward batch (default: fitted to the device's memory)")
    g.add_argument("--min-tissue", type=float, default=0.0,
                   help="fast mode: skip windows with less than this fraction of breast pixels")  # fmt: skip
    g.add_argument("--se-tol", type=float, default=0.0,
                   help="fast mode: stop drawing masks once the correlations' standard error is below this")  # fmt: skip
    g.add_argument("--mask-round", type=int, default=64, help="masks per round with --se-tol (default: %(default)s)")


def correlax_settings(args: argparse.Namespace, input_size: int) -> CorrelaxSettings:
    return CorrelaxSettings(
        window=args.window or input_size, stride=args.stride, n_masks=args.masks, grid=args.grid,
        keep_prob=args.keep_prob, seed=args.seed, precision=args.precision, compile=args.compile,
        batch_size=args.batch_size, min_tissue=args.min_tissue, se_tol=args.se_tol, mask_round=args.mask_round,
    )  # fmt: skip
