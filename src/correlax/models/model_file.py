"""``--model`` as a file: a correlax checkpoint, or one's own classifier as a TorchScript file or a timm state dict
(``arch``) with a labels file, made into the model CorRELAX explains (:mod:`correlax.models.adapter`)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from correlax.labels import check_label
from correlax.models.adapter import ACTIVATIONS, FindingAdapter, ModelContractError, check_contract, layer_name
from correlax.models.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint


def read_labels_file(path: Path) -> tuple[str, ...]:
    """One correlax label per line, in the order of the model's logits; blank lines and ``#`` comments skipped.

    Raises:
        CheckpointError: naming the file and line of an unknown or repeated label, or an empty file.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(path, f"cannot read the labels file ({e})") from e
    labels: list[str] = []
    for number, line in enumerate(lines, 1):
        label = line.split("#", 1)[0].strip()
        if not label:
            continue
        try:
            check_label(label)
        except ValueError as e:
            raise CheckpointError(path, f"line {number}: {e}") from e
        if label in labels:
            raise CheckpointError(path, f"line {number}: label {label!r} given twice")
        labels.append(label)
    if not labels:
        raise CheckpointError(path, "no labels: write one label per line, in the order of the model's outputs")
    return tuple(labels)


def read_torchscript(path: Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """``torch.jit.load``, with a file that is not TorchScript refused by name."""
    try:
        return torch.jit.load(str(path), map_location=map_location)
    except Exception as e:  # noqa: BLE001 -- torch.jit.load raises RuntimeError or ValueError for foreign files
        raise CheckpointError(path, f"not a TorchScript file ({type(e).__name__}); for a timm state dict give --arch NAME") from e


def read_timm(path: Path, arch: str, num_classes: int) -> nn.Module:
    """``timm.create_model(arch, num_classes=...)`` with the file's weights (timm's loader: safetensors or a pickle of
    plain tensors, a ``state_dict``/``model`` wrapper, EMA weights when present)."""
    import timm
    from timm.models import load_checkpoint as load_timm_weights

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as e:
        raise CheckpointError(path, f"--arch {arch!r}: {e}") from e
    try:
        load_timm_weights(model, str(path), strict=True, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(path, "refused unsafe checkpoint: it holds Python objects beyond weights") from e
    except RuntimeError as e:
        raise CheckpointError(path, f"weights do not fit timm {arch!r} with {num_classes} classes: {str(e)[:400]}") from e
    except Exception as e:  # noqa: BLE001 -- truncated zip, foreign file, ...
        raise CheckpointError(path, f"not a readable state dict, truncated or damaged? ({type(e).__name__}: {e})") from e
    return model


@dataclass(frozen=True)
class ModelFile:
    """What ``--model`` names. Without ``labels_file``: a correlax checkpoint (:func:`load_checkpoint`). With it: a
    TorchScript file, or with ``arch`` a timm state dict; ``feature_layer`` (timm only) and ``activation`` as in
    :func:`correlax.models.adapter.as_finding_model`."""

    path: Path
    labels_file: Path | None = None
    arch: str | None = None
    feature_layer: str | None = None
    activation: str = "sigmoid"
    input_size: int = 256  # the default window, as a correlax checkpoint's input size

    def load(self, map_location: str | torch.device = "cpu") -> tuple[nn.Module, CheckpointInfo]:
        """The model in eval mode and what the explainer needs to know of it. Raises CheckpointError."""
        path = Path(self.path)
        if self.labels_file is None:
            if self.arch or self.feature_layer or self.activation != "sigmoid":
                raise CheckpointError(path, "--arch, --feature-layer and --activation describe one's own model: give its --labels-file too")
            return load_checkpoint(path, map_location)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        labels = read_labels_file(self.labels_file)
        if not path.is_file():
            raise CheckpointError(path, "no such file")
        model = read_timm(path, self.arch, len(labels)).to(map_location) if self.arch else read_torchscript(path, map_location)
        try:
            layer = layer_name(model, self.feature_layer) if self.feature_layer else None
            net = FindingAdapter(model, labels, layer, self.activation).eval()
            check_contract(net, self.input_size)
        except ModelContractError as e:
            raise CheckpointError(path, str(e)) from e
        return net, CheckpointInfo(labels=labels, backbone=self.arch or "torchscript", input_size=self.input_size)
