"""``correlax`` entry point. Subcommands live in sibling modules that define ``register``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

import correlax
import correlax.cli as cli_package
from correlax.cli.outputs import declared_output_problem


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="correlax",
        description="Find clinically relevant findings in mammograms and explain them with CorRELAX heatmaps.",
    )
    parser.add_argument("--version", action="version", version=f"correlax {correlax.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name == "main":
            continue
        module = importlib.import_module(f"{cli_package.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    problem = declared_output_problem(args)
    if problem:
        print(f"correlax {args.command}: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except OSError as exc:  # a disk that fills or a folder that turns read-only mid-run: one line (-v: the traceback)
        if args.verbose:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"correlax {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
