"""How every command starts and ends. Before any work, the check of where it writes: one line and exit
status 2 when the output folder (or the folder of an output file) is a file, cannot be made, or cannot be
written. At the end, the inputs it skipped, each by name, and exit status 1 when there was any."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

FOLDER, FILE, EXISTING_FOLDER = "folder", "file", "existing folder"  # EXISTING_FOLDER: never made here


def declare_output(parser: argparse.ArgumentParser, dest: str = "out", kind: str = FOLDER) -> None:
    """Have :func:`correlax.cli.main.main` check ``args.<dest>`` (an output ``kind``) before the command runs."""
    parser.set_defaults(output=(dest, kind))


def output_problem(path: Path, kind: str = FOLDER) -> str | None:
    """Why nothing can be written at ``path`` (a folder to make or fill, or a file to write), or None.

    The folder is made when missing and a temporary file is written and removed in it: permission bits
    alone would not tell (root ignores them; a read-only mount or a full disk does not show in them)."""
    if kind == FILE and path.is_dir():
        return f"{path}: a folder, expected the name of a file to write"
    folder = path.parent if kind == FILE else path
    if kind == EXISTING_FOLDER and not folder.exists():
        return None  # the command says what it expected there
    if folder.exists() and not folder.is_dir():
        return f"{folder}: a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".correlax-write-check-"):
            pass
    except OSError as exc:
        return f"{folder}: cannot write the outputs there ({exc.strerror or exc})"
    return None


def declared_output_problem(args: argparse.Namespace) -> str | None:
    """:func:`output_problem` of the output the command declared (None when it declared none or none was given)."""
    dest, kind = getattr(args, "output", (None, None))
    value = getattr(args, dest, None) if dest else None
    return None if value is None else output_problem(Path(value), kind)


def report_skipped(failures: list[dict], say=print) -> int:
    """Say each skipped input (``{"path", "reason"}``) by name; the exit status: 1 when any, else 0."""
    if failures:
        say(f"{len(failures)} input(s) skipped:")
    for failure in failures:
        say(f"  skipped {failure['path']}: {failure['reason']}")
    return 1 if failures else 0
