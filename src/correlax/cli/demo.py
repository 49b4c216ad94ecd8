"""``correlax demo``: the whole chain on synthetic mammograms (see :mod:`correlax.demo`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from correlax.cli.outputs import declare_output


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole chain on synthetic mammograms and write the report",
        description="Make a synthetic data set, train the crop classifier, evaluate it, explain the test images with "
        "CorRELAX and the baselines, play the Pointing Game and write metrics.json and an HTML report. "
        "Finished stages are reused when run again with the same --out (about 6 minutes on 2 CPU cores).",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a smaller run (about 1.5 minutes on 2 CPU cores), for tests")
    p.add_argument(
        "--threads", type=int, default=1,
        help="torch threads (default: %(default)s, fastest for the demo's small tensors on a shared 2-core CPU; "
        "0: torch's default)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="training epochs (default: 36; 10 with --quick)")
    p.set_defaults(func=run)
    declare_output(p)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from correlax.demo import QUICK, DemoConfig, run_demo

    config = replace(QUICK if args.quick else DemoConfig(), seed=args.seed, threads=args.threads)
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    run_demo(args.out, config)
    return 0
