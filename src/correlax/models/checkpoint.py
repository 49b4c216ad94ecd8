"""Exported models: one safetensors file holding the weights and, in its metadata, what rebuilds the model.

A JSON copy of the metadata is written next to it for people (``model.json``); loading needs only
the ``.safetensors`` file. Nothing is unpickled: safetensors for exported models, and
``torch.load(weights_only=True)`` for Lightning checkpoints written by :mod:`correlax.training`.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

import correlax
from correlax.errors import FileProblem
from correlax.fileio import atomic_write_bytes, atomic_write_text, strict_json
from correlax.labels import check_label
from correlax.models.classifier import CropClassifier
from correlax.models.factory import create_model
from correlax.preprocess import PreprocessSettings

FORMAT_VERSION = 1
METADATA_KEY = "correlax"
INPUT_SIZES = range(16, 4097)  # crop sizes a checkpoint may ask for: beyond 4096 is a damaged or hostile file


class CheckpointError(FileProblem):
    """A checkpoint cannot be used; the message names the file and the reason."""


@dataclass
class CheckpointInfo:
    """What a checkpoint states beside its weights: labels, backbone, input size, pre-processing and head."""
    labels: tuple[str, ...]
    backbone: str  # preset or timm name
    input_size: int = 256
    preprocess: dict = field(default_factory=lambda: PreprocessSettings().to_dict())
    head: str = "reference"
    training_spacing: float | None = None  # mm per pixel of the training images, when known
    thresholds: dict[str, float] | None = None  # per-label decision thresholds chosen on validation
    format_version: int = FORMAT_VERSION
    correlax_version: str = correlax.__version__
    extra: dict = field(default_factory=dict)  # free-form: training arguments, validation metrics

    def __post_init__(self) -> None:
        """Check every field, so that damaged metadata fails here with what is wrong, not later in the model."""
        if not isinstance(self.labels, (list, tuple)) or not self.labels or not all(isinstance(x, str) for x in self.labels):
            raise ValueError(f"labels must be a non-empty list of label names, got {self.labels!r}")
        self.labels = tuple(check_label(label) for label in self.labels)
        for name in ("backbone", "head", "correlax_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not _is_int(self.input_size) or self.input_size not in INPUT_SIZES:
            raise ValueError(
                f"input_size must be a whole number of pixels from {INPUT_SIZES.start} to {INPUT_SIZES.stop - 1}, "
                f"got {self.input_size!r}"
            )
        if not isinstance(self.preprocess, dict):
            raise ValueError(f"preprocess must be an object of settings, got {self.preprocess!r}")
        PreprocessSettings.from_dict(self.preprocess)  # unknown keys: ValueError naming them
        if self.training_spacing is not None and not _is_positive(self.training_spacing):
            raise ValueError(f"training_spacing must be a positive number of mm or null, got {self.training_spacing!r}")
        thresholds = self.thresholds if self.thresholds is not None else {}
        if not isinstance(thresholds, dict) or not all(
            label in self.labels and _is_number(cut) and 0 <= cut <= 1 for label, cut in thresholds.items()
        ):
            raise ValueError(f"thresholds must map the model's labels to numbers in [0, 1], got {self.thresholds!r}")
        if not _is_int(self.format_version):
            raise ValueError(f"format_version must be a whole number, got {self.format_version!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra must be an object, got {self.extra!r}")

    @property
    def preprocess_settings(self) -> PreprocessSettings:
        return PreprocessSettings.from_dict(self.preprocess)

    def to_dict(self) -> dict:
        """The metadata as plain JSON-ready values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> CheckpointInfo:
        """Rebuild from stored metadata (keys this version does not know are ignored).

        Raises:
            ValueError: saying what is wrong: not an object, a missing or malformed field.
        """
        if not isinstance(data, dict):
            raise ValueError(f"metadata is a {type(data).__name__}, expected an object")
        missing = [name for name in ("labels", "backbone") if name not in data]
        if missing:
            raise ValueError(f"metadata lacks {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def save_checkpoint(path: str | Path, model: CropClassifier, info: CheckpointInfo) -> Path:
    """Write ``model`` and ``info`` atomically to ``path`` (.safetensors) plus ``path.with_suffix('.json')``."""
    from safetensors.torch import save

    path = Path(path)
    if tuple(info.labels) != tuple(model.labels):
        raise ValueError(f"checkpoint labels {info.labels} differ from the model's {model.labels}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = strict_json(info.to_dict())
    atomic_write_bytes(path, save(state, metadata={METADATA_KEY: text}))
    atomic_write_text(path.with_suffix(".json"), text)
    return path


class ModelSource(Protocol):
    """What loads itself: :class:`correlax.models.model_file.ModelFile` (one's own model with its labels file)."""

    def load(self, map_location: str | torch.device) -> tuple[nn.Module, CheckpointInfo]: ...


def load_checkpoint(path: str | Path | ModelSource, map_location: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model (in eval mode) from an exported ``.safetensors`` file or a training ``.ckpt``, or load a
    :class:`ModelSource` (one's own TorchScript or timm model with its labels file).

    Raises:
        CheckpointError: missing, truncated or foreign file, a pickle beyond plain tensors and data
            (refused unread), a format version this code cannot read, malformed metadata, or weights
            that hold NaN or infinite values.
    """
    if not isinstance(path, (str, Path)):
        return path.load(map_location)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.suffix == ".ckpt":
        state, meta = _read_lightning(path)
    else:
        state, meta = _read_safetensors(path)
    if not isinstance(meta, dict):
        raise CheckpointError(path, f"malformed checkpoint metadata: a {type(meta).__name__}, expected an object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"checkpoint format version {meta.get('format_version')!r} (written by correlax "
            f"{meta.get('correlax_version')}); this correlax {correlax.__version__} reads version {FORMAT_VERSION}",
        )
    try:
        info = CheckpointInfo.from_dict(meta)
    except ValueError as e:
        raise CheckpointError(path, f"malformed checkpoint metadata: {e}") from e
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(path, f"weight {name} holds NaN or infinite values")
    model = create_model(info.backbone, info.labels, pretrained=False, head=info.head)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(path, f"weights do not fit backbone {info.backbone!r}: {e}") from e
    return model.to(map_location).eval(), info


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta_text = (f.metadata() or {}).get(METADATA_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 -- safetensors raises its own error types for damaged files
        raise CheckpointError(path, f"not a readable safetensors file, truncated or damaged? ({e})") from e
    if meta_text is None:
        raise CheckpointError(path, "safetensors file without correlax metadata; not a correlax model "
                                    "(one's own model: give its --labels-file, and --arch for a timm state dict)")
    try:
        return state, json.loads(meta_text)
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"damaged correlax metadata ({e})") from e


def load_training_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint loaded with ``torch.load(weights_only=True)``, whatever the environment says.

    Raises:
        CheckpointError: the file holds objects beyond tensors and plain data (refused: unpickling them
            could run code), or it is truncated or damaged.
    """
    path = Path(path)
    try:
        # weights_only given explicitly: TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 overrides only a default.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        lines = str(e).splitlines()
        reason = next((line.strip() for line in lines if "Unsupported global" in line), lines[0] if lines else "")
        raise CheckpointError(path, f"refused unsafe checkpoint: it holds Python objects beyond weights ({reason})") from e
    except Exception as e:  # noqa: BLE001 -- truncated zip, foreign file, ...
        raise CheckpointError(path, f"not a readable training checkpoint, truncated or damaged? ({e})") from e


def _read_lightning(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = load_training_checkpoint(path)
    try:
        meta = ckpt["hyper_parameters"]["info"]
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(path, f"not a correlax training checkpoint (no {e})") from e
    return state, meta
