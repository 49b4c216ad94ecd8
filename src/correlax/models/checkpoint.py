"""Exported models: one safetensors file holding the weights and, in its metadata, what rebuilds the model.

A JSON copy of the metadata is written next to it for people (``model.json``); loading needs only
the ``.safetensors`` file. Nothing is unpickled: safetensors for exported models, and
``torch.load(weights_only=True)`` for Lightning checkpoints written by :mod:`correlax.training`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

import correlax
from correlax.fileio import atomic_write_bytes, atomic_write_text
from correlax.errors import FileProblem
from correlax.models.classifier import CropClassifier
from correlax.models.factory import create_model
from correlax.preprocess import PreprocessSettings

FORMAT_VERSION = 1
METADATA_KEY = "correlax"


class CheckpointError(FileProblem):
    """A checkpoint cannot be used; the message names the file and the reason."""


@dataclass
class CheckpointInfo:
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

    @property
    def preprocess_settings(self) -> PreprocessSettings:
        return PreprocessSettings.from_dict(self.preprocess)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CheckpointInfo:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["labels"] = tuple(data["labels"])
        return cls(**data)


def save_checkpoint(path: str | Path, model: CropClassifier, info: CheckpointInfo) -> Path:
    """Write ``model`` and ``info`` atomically to ``path`` (.safetensors) plus ``path.with_suffix('.json')``."""
    from safetensors.torch import save

    path = Path(path)
    if tuple(info.labels) != tuple(model.labels):
        raise ValueError(f"checkpoint labels {info.labels} differ from the model's {model.labels}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    text = json.dumps(info.to_dict(), indent=1)
    atomic_write_bytes(path, save(state, metadata={METADATA_KEY: text}))
    atomic_write_text(path.with_suffix(".json"), text)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[CropClassifier, CheckpointInfo]:
    """Rebuild the model (in eval mode) from an exported ``.safetensors`` file or a training ``.ckpt``.

    Raises:
        CheckpointError: missing, truncated or foreign file, or a format version this code cannot read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.suffix == ".ckpt":
        state, meta = _read_lightning(path)
    else:
        state, meta = _read_safetensors(path)
    try:
        info = CheckpointInfo.from_dict(meta)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(path, f"checkpoint metadata is incomplete ({e})") from e
    if info.format_version != FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"checkpoint format version {info.format_version} (written by correlax {info.correlax_version}); "
            f"this correlax {correlax.__version__} reads version {FORMAT_VERSION}",
        )
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
        raise CheckpointError(path, "safetensors file without correlax metadata; not a correlax model")
    try:
        return state, json.loads(meta_text)
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"damaged correlax metadata ({e})") from e


def _read_lightning(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- truncated zip, foreign pickle, ...
        raise CheckpointError(path, f"not a readable training checkpoint, truncated or damaged? ({e})") from e
    try:
        meta = ckpt["hyper_parameters"]["info"]
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    except (KeyError, TypeError) as e:
        raise CheckpointError(path, f"not a correlax training checkpoint (no {e})") from e
    return state, meta
