"""One store for every computed map: ``explain``, ``pointing-game`` and the demo read and write it.

An entry holds the arrays one explainer produced for one image. Its key is a digest of everything
that shapes those arrays and nothing else:

- the input's identity: the resolved absolute path with a sha256 digest of the file's bytes (a changed or
  replaced file is a new input, and two ``1-1.dcm`` in different folders are two inputs; a data folder copied
  back or re-provisioned in place, same bytes with new modification times, keeps its maps);
- the model: a digest of its weights, labels and pre-processing (:func:`model_digest`);
- how the file became the network's image: the pre-processing and the pixel spacing given for files that
  state none (``explain --spacing``, a manifest record's spacing; :func:`preparation`);
- the method and its method settings (window, stride, masks, seed, precision, …), never run knobs
  such as the batch size or ``torch.compile``, which leave the numbers as they are.

Entries live at ``ROOT/<key[:2]>/<key>.npz``: the file name is the key, so no image id or path
ever becomes part of a path, and nothing is written outside ``ROOT``. Each entry carries its own
key, description and a sha256 of its arrays, checked on reading: a damaged entry (truncated, overwritten)
is reported by name and computed again. Writes are atomic. A worker claims an entry before computing it
(:mod:`correlax.pipelines.claims`), so concurrent workers, on one machine or several sharing a file
system, split the work instead of repeating it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from correlax.errors import FileProblem
from correlax.fileio import atomic_write_bytes, remove_stale_temporaries
from correlax.pipelines.claims import WAIT_SECONDS, Claim, live_owner, try_claim, wait_while_claimed

log = logging.getLogger(__name__)

_META = "__entry__"
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


class DamagedEntry(FileProblem):
    """A store entry (or its ``OUT/<name>.npz`` view) that cannot be read or fails its checksum."""


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


def preparation(preprocess: Mapping, spacing: float | tuple[float, float] | None) -> dict:
    """How a file becomes the network's image, as a key part: the pre-processing and the spacing (mm) given for
    files that state none (kept even for files that state their own: a changed ``--spacing`` recomputes)."""
    pair = None if spacing is None else [float(spacing)] * 2 if np.isscalar(spacing) else [float(v) for v in spacing]
    return {"preprocess": dict(preprocess), "spacing_mm": pair}


@dataclass(frozen=True)
class ModelKey:
    """The parts of a key shared by every image of a run: the model and how its inputs are prepared."""

    model: str  # model_digest
    prepared: Mapping = field(default_factory=dict)  # preparation()

    def entry(self, image: ImageIdentity, explainer) -> EntryKey:
        """The key of ``explainer``'s entry for ``image``."""
        return EntryKey(image, self.model, explainer.name, explainer.settings_key(), self.prepared)


@dataclass(frozen=True)
class EntryKey:
    """Everything an entry's arrays depend on."""

    image: ImageIdentity
    model: str  # model_digest
    method: str  # explainer name, e.g. "correlax", "gradcam"
    settings: Mapping  # the method's settings (method knobs only)
    prepared: Mapping = field(default_factory=dict)  # preparation()

    def describe(self) -> dict:
        """The key as plain data, as it is written into the entry."""
        return {"image": vars(self.image), "model": self.model, "prepared": dict(self.prepared), "method": self.method,
                "settings": dict(self.settings)}  # fmt: skip

    @property
    def hex(self) -> str:
        """The digest that names the entry."""
        return digest(self.describe())


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of arrays' names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, a.shape]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_entry(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(key description, arrays) of an entry file; raises DamagedEntry naming it when it is unreadable or its
    arrays do not match the checksum written with them. An entry written before checksums is returned as it
    is (its key, without the preparation, matches no key of today: the store computes it again)."""
    try:
        with np.load(path) as data:
            meta = json.loads(str(data[_META]))
            arrays = {k: data[k] for k in data.files if k != _META}
        if not isinstance(meta, dict):
            raise ValueError("no entry description")
        if "sha256" not in meta:
            return meta, arrays
        checksum = meta["sha256"]
    except FileNotFoundError:
        raise
    except _UNREADABLE as exc:
        raise DamagedEntry(path, f"damaged map entry ({type(exc).__name__}: {exc})") from exc
    if checksum != arrays_digest(arrays):
        raise DamagedEntry(path, "damaged map entry (its arrays do not match the checksum written with them)")
    return meta["key"], arrays


class MapStore:
    """Entries under ``root`` (created on first write). ``readonly`` stores are only looked up. ``damaged``
    lists the entries found damaged (each is computed again by whoever asked for it)."""

    def __init__(self, root: str | Path, readonly: bool = False, wait_seconds: float = WAIT_SECONDS) -> None:
        self.root = Path(root)
        self.readonly = readonly
        self.wait_seconds = wait_seconds
        self.damaged: list[DamagedEntry] = []
        if not readonly and self.root.is_dir():
            for tmp in remove_stale_temporaries(self.root):
                log.info("removed a temporary file left by a killed run: %s", tmp)

    def path(self, key: EntryKey) -> Path:
        """Where the entry of ``key`` lives (whether or not it exists)."""
        h = key.hex
        return self.root / h[:2] / f"{h}.npz"

    def load(self, key: EntryKey) -> dict[str, np.ndarray] | None:
        """The entry's arrays, or None when there is none (or it is damaged, or not this key's)."""
        path = self.path(key)
        try:
            meta, arrays = read_entry(path)
        except FileNotFoundError:
            return None
        except DamagedEntry as exc:
            if all(d.path != exc.path for d in self.damaged):
                named = DamagedEntry(exc.path, f"{exc.cause}, the map of {key.image.path}")
                log.warning("%s; computing it again", named)
                self.damaged.append(named)
            return None
        if meta != json.loads(json.dumps(key.describe(), default=str)):
            log.warning("%s: entry describes another input or setting, recomputing", path)
            return None
        return arrays

    def save(self, key: EntryKey, arrays: Mapping[str, np.ndarray]) -> Path:
        """Write the entry atomically, with its key's description and the arrays' checksum; returns its path."""
        if self.readonly:
            raise PermissionError(f"{self.root}: read-only map store")
        buffer = io.BytesIO()
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        meta = np.array(json.dumps({"key": key.describe(), "sha256": arrays_digest(arrays)}, default=str))
        np.savez_compressed(buffer, **{_META: meta}, **arrays)
        path = self.path(key)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def lock_path(self, key: EntryKey) -> Path:
        """The claim file of ``key``'s entry."""
        return self.path(key).with_suffix(".lock")

    def claim(self, key: EntryKey) -> Claim | None:
        """Claim the entry for this process; None while another live worker holds it (an abandoned claim is
        taken over, see :mod:`correlax.pipelines.claims`)."""
        return try_claim(self.lock_path(key), log.warning)

    def is_claimed(self, key: EntryKey) -> bool:
        """Whether a live worker holds the entry's claim."""
        return live_owner(self.lock_path(key)) is not None

    def wait_for(self, key: EntryKey, what: str, poll_seconds: float = 2.0) -> dict[str, np.ndarray] | None:
        """Wait while another live worker holds the claim, at most ``wait_seconds`` (then ClaimTimeout naming
        ``what``); then the entry (None if that worker gave up without one)."""
        wait_while_claimed(self.lock_path(key), what, self.wait_seconds, poll_seconds)
        return self.load(key)

    def entries(self) -> Iterator[Path]:
        """Every entry file in the store."""
        return self.root.glob("*/*.npz")
