"""MkDocs hook: the CLI reference page (``cli.md``), rendered at build time from the argparse parser.

Every subcommand's ``--help``, nested ones (``correlax data csv``) included, so the page cannot drift from
the code. Built on the parser of ``correlax.cli.main``; nothing is run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
WIDTH = "100"  # argparse wraps help text at $COLUMNS


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of every subcommand below ``parser``, depth first, in the order they were added."""
    found = []
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((name, sub))
                found += [(f"{name} {child}", grandchild) for child, grandchild in _subcommands(sub)]
    return found


def render_cli_reference() -> str:
    """The page: ``correlax --help``, then one section per subcommand with its ``--help``."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from correlax.cli.main import build_parser

    os.environ["COLUMNS"] = WIDTH
    parser = build_parser()
    parts = [
        "# Command-line reference",
        "",
        "Generated at build time from the argparse parser (`correlax <command> --help`).",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, sub in _subcommands(parser):
        parts += ["", f"## `correlax {name}`", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def on_files(files, config):  # noqa: ANN001 (MkDocs' hook signature)
    """Add the generated ``cli.md`` to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "cli.md", content=render_cli_reference()))
    return files
