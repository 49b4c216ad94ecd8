"""Writing files so that readers never see half of one, and colleagues can read them."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path


def _default_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask (mkstemp's 0600 is private)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


TMP_PREFIX = ".correlax-"  # every temporary file correlax writes starts with this and ends in TMP_SUFFIX
TMP_SUFFIX = ".tmp"


def temporary_name(path: Path, tag: str = "") -> Path:
    """A fixed temporary name beside ``path`` that marks it as correlax's (for writers that need a known name)."""
    return path.with_name(f"{TMP_PREFIX}{path.name}{tag}{TMP_SUFFIX}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def strict_json(value: object, indent: int | None = 1) -> str:
    """JSON that every parser accepts: NaN and ±inf become null (``json.dumps`` would write bare NaN)."""

    def clean(v: object) -> object:
        if isinstance(v, float):
            return v if math.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=indent, allow_nan=False)


def write_json(path: Path, value: object) -> None:
    """Strict JSON, written atomically."""
    atomic_write_text(path, strict_json(value))


STALE_TMP_SECONDS = 600  # a temporary file this old is left over from a killed writer


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files that killed correlax writers left anywhere under ``folder`` (an atomic write
    renames or removes its own within seconds); returns what was removed. Only names that mark a file as
    correlax's (``.correlax-*.tmp``) are touched: a user's own ``.draft.tmp`` stays."""
    removed = []
    now = time.time()
    for tmp in Path(folder).rglob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        try:
            info = tmp.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    return removed


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` (after its symlinks) is not a regular file to read, or None: a FIFO would block a reader
    forever and a device such as /dev/zero never ends, so neither is ever opened. None for a missing path
    (its reader names it)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None if not os.path.islink(path) else "a broken symbolic link"
    except OSError as exc:
        return f"cannot be opened ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"not a regular file ({kind}), never read"
