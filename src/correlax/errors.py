"""Exceptions shared across packages."""

from __future__ import annotations

from pathlib import Path


class FileProblem(Exception):
    """A file cannot be used. ``str(error)`` is ``"<path>: <cause>"``, naming the file and what is wrong."""

    def __init__(self, path: str | Path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")
