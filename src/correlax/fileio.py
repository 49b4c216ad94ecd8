"""Writing output files: atomically (readers never see half a file) and as strict JSON."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file.

    The file gets the permissions of an ordinary new file (0666 less the umask), not the temporary
    file's 0600, so colleagues sharing the folder can read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def json_dumps(value: Any, indent: int | None = 1) -> str:
    """Strict JSON (what ``JSON.parse`` accepts): NaN and infinities become ``null``, never bare ``NaN``."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False)


def atomic_write_json(path: Path, value: Any) -> None:
    """:func:`json_dumps` written with :func:`atomic_write_text`."""
    atomic_write_text(path, json_dumps(value))
