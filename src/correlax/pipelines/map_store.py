"""One store for every computed map: ``explain``, ``pointing-game`` and the demo read and write it.

An entry holds the arrays one explainer produced for one image. Its key is a digest of everything
that shapes those arrays and nothing else:

- the input's identity: the resolved absolute path with a sha256 digest of the file's bytes (a changed or
  replaced file is a new input, and two ``1-1.dcm`` in different folders are two inputs; a data folder copied
  back or re-provisioned in place, same bytes with new modification times, keeps its maps);
- the model: a digest of its weights, labels and pre-processing (:func:`model_digest`);
- the method and its method settings (window, stride, masks, seed, precision, …), never run knobs
  such as the batch size or ``torch.compile``, which leave the numbers as they are.

Entries live at ``ROOT/<key[:2]>/<key>.npz``: the file name is the key, so no image id or path
ever becomes part of a path, and nothing is written outside ``ROOT``. Each entry carries its own
key and description, checked on reading. Writes are atomic. A worker claims an entry before
computing it (an exclusive lock file beside it), so concurrent workers, on one machine or several
sharing a file system, split the work instead of repeating it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from correlax.fileio import atomic_write_bytes, remove_stale_temporaries

log = logging.getLogger(__name__)

STALE_CLAIM_SECONDS = 24 * 3600  # a claim of another host this old is taken to be abandoned
_META = "__entry__"


@dataclass(frozen=True)
class ImageIdentity:
    """Which input file an entry belongs to: its path and its bytes, not when it was written (hashing reads the
    file once more, a small cost beside explaining it)."""

    path: str  # resolved absolute path
    size: int
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> ImageIdentity:
        """Raises OSError (naming the file) when it cannot be read."""
        resolved = Path(path).resolve()
        with resolved.open("rb") as f:
            return cls(str(resolved), os.fstat(f.fileno()).st_size, hashlib.file_digest(f, "sha256").hexdigest())


def digest(payload: object) -> str:
    """sha256 hex of a JSON-serialisable payload (keys sorted)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def model_digest(model, preprocess_settings: Mapping) -> str:
    """Digest of a model's weights, labels and pre-processing: two checkpoints with the same labels differ."""
    h = hashlib.sha256()
    h.update(json.dumps([list(model.labels), dict(preprocess_settings)], sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(-1).numpy().view(np.uint8).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class EntryKey:
    """Everything an entry's arrays depend on."""

    image: ImageIdentity
    model: str  # model_digest
    method: str  # explainer name, e.g. "correlax", "gradcam"
    settings: Mapping  # the method's settings (method knobs only)

    def describe(self) -> dict:
        return {"image": vars(self.image), "model": self.model, "method": self.method, "settings": dict(self.settings)}

    @property
    def hex(self) -> str:
        return digest(self.describe())


class Claim:
    """An exclusive lock file; released on exit (also on error)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class MapStore:
    """Entries under ``root`` (created on first write). ``readonly`` stores are only looked up."""

    def __init__(self, root: str | Path, readonly: bool = False) -> None:
        self.root = Path(root)
        self.readonly = readonly
        if not readonly and self.root.is_dir():
            for tmp in remove_stale_temporaries(self.root):
                log.info("removed a temporary file left by a killed run: %s", tmp)

    def path(self, key: EntryKey) -> Path:
        h = key.hex
        return self.root / h[:2] / f"{h}.npz"

    def load(self, key: EntryKey) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or None when there is none (or it is unreadable, or not this key's)."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            with np.load(path) as data:
                meta = json.loads(str(data[_META]))
                arrays = {k: data[k] for k in data.files if k != _META}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable map entry, recomputing (%s)", path, exc)
            return None
        if meta != json.loads(json.dumps(key.describe(), default=str)):
            log.warning("%s: entry describes another input or setting, recomputing", path)
            return None
        return arrays

    def save(self, key: EntryKey, arrays: Mapping[str, np.ndarray]) -> Path:
        if self.readonly:
            raise PermissionError(f"{self.root}: read-only map store")
        buffer = io.BytesIO()
        meta = np.array(json.dumps(key.describe(), default=str))
        np.savez_compressed(buffer, **{_META: meta}, **{k: np.asarray(v) for k, v in arrays.items()})
        path = self.path(key)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def claim(self, key: EntryKey) -> Claim | None:
        """Claim the entry for this process; None when another live worker holds it."""
        lock = self.path(key).with_suffix(".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not _abandoned(lock):
                    return None
                log.warning("%s: removing an abandoned claim", lock)
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}, f)
            return Claim(lock)
        return None

    def is_claimed(self, key: EntryKey) -> bool:
        lock = self.path(key).with_suffix(".lock")
        return lock.exists() and not _abandoned(lock)

    def wait_for(self, key: EntryKey, poll_seconds: float = 2.0) -> dict[str, np.ndarray] | None:
        """Wait while another worker holds the claim; then the entry (None if it gave up without one)."""
        while self.is_claimed(key):
            time.sleep(poll_seconds)
        return self.load(key)

    def entries(self) -> Iterator[Path]:
        return self.root.glob("*/*.npz")


def _abandoned(lock: Path) -> bool:
    """A claim is abandoned when its process is gone (same host) or it is very old (another host)."""
    try:
        info = json.loads(lock.read_text() or "{}")
        age = time.time() - lock.stat().st_mtime
    except (OSError, ValueError):
        return False  # being written right now, or just released
    if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
        try:
            os.kill(info["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return age > STALE_CLAIM_SECONDS
