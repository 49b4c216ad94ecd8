"""Any image classifier that returns logits, made into the model CorRELAX explains (:mod:`correlax.models.contract`).

As pytorch-grad-cam's ``target_layers``, the features come from a layer of the caller's model through a forward
hook (``feature_layer``: the module or its dotted name; a (B, C, h, w) output is averaged over space, a (B, N, D)
token output over tokens), or, when no layer is named, from timm's ``forward_features``/``forward_head``. A model
already returning ``(logits, features)`` needs neither. One probe forward checks the contract, and an error names
what is missing. The explainers work on :func:`working_copy`: switching it to eval or channels-last leaves the
caller's model as it was.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence

import torch
from torch import nn

from correlax.models.contract import ClassifierOutput

ACTIVATIONS = ("sigmoid", "softmax")  # multi-label (one sigmoid per class) or one softmax over the classes


class ModelContractError(ValueError):
    """The model does not give what CorRELAX needs; the message names what is missing."""


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    param = next(iter(model.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


def working_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree whose parameters share the caller's weight tensors (no weight is copied): eval(),
    channels-last or ``requires_grad_`` on it leave the caller's modules and parameters as they were. A TorchScript
    module is copied whole (its weights too)."""
    if isinstance(model, torch.jit.ScriptModule):
        return copy.deepcopy(model)
    memo: dict[int, object] = {id(p): nn.Parameter(p.detach(), p.requires_grad) for p in model.parameters()}
    memo.update({id(b): b for b in model.buffers()})  # a conversion rebinds a buffer in the copy, never alters it
    return copy.deepcopy(model, memo)


def softmax_as_sigmoid_logits(logits: torch.Tensor) -> torch.Tensor:
    """Per-class logits whose sigmoid is the softmax probability: z_c − logsumexp_{j≠c} z_j = log p_c − log(1 − p_c),
    so that a softmax classifier feeds the engine's per-class sigmoid unchanged."""
    z = logits.float()
    n = z.shape[1]
    if n == 1:
        raise ModelContractError("a softmax over a single class is 1 everywhere; use activation='sigmoid'")
    itself = torch.eye(n, dtype=torch.bool, device=z.device)
    others = z.unsqueeze(1).expand(-1, n, -1).masked_fill(itself, float("-inf"))  # (B, c, j): z_j for j ≠ c
    return z - torch.logsumexp(others, dim=2)


def pooled(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → mean over space, (B, N, D) tokens → mean over tokens, (B, D) as it is."""
    if features.ndim == 4:
        return features.mean(dim=(2, 3))
    if features.ndim == 3:
        return features.mean(dim=1)
    if features.ndim == 2:
        return features
    raise ModelContractError(
        f"the feature layer's output has shape {tuple(features.shape)}; expected (B, C, h, w), (B, N, D) or (B, D)"
    )


def _logits_and_features(out: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A model's output: logits alone (a tensor, or an object with ``.logits`` as Hugging Face's), or (logits,
    features)."""
    if isinstance(out, torch.Tensor):
        return out, None
    if isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out):
        return out[0], out[1]
    if isinstance(getattr(out, "logits", None), torch.Tensor):
        return out.logits, None
    raise ModelContractError(
        f"the model returns a {type(out).__name__}; expected a logits tensor (B, L) or (logits, features)"
    )


def has_timm_head(model: nn.Module) -> bool:
    """Whether the model splits as timm's do: ``forward_features`` then ``forward_head`` (``pre_logits``)."""
    return callable(getattr(model, "forward_features", None)) and callable(getattr(model, "forward_head", None))


class FindingAdapter(nn.Module):
    """A logits model as a :class:`~correlax.models.contract.FindingModel`: returns ``ClassifierOutput(logits,
    features)`` with sigmoid logits (a softmax model's turned into per-class logits, :func:`softmax_as_sigmoid_logits`).
    ``feature_layer`` is a dotted submodule name; ``target_layer`` is what Grad-CAM differentiates at."""

    def __init__(
        self, model: nn.Module, labels: Sequence[str], feature_layer: str | None = None, activation: str = "sigmoid"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.model = model
        self.labels = tuple(labels)
        names = all(isinstance(x, str) and x for x in self.labels)
        if not self.labels or not names or len(set(self.labels)) < len(self.labels):
            raise ValueError(f"labels must be distinct non-empty names, one per logit; got {labels!r}")
        self.feature_layer = feature_layer
        self.activation = activation
        self.uses_timm_head = feature_layer is None and has_timm_head(model)

    @property
    def target_layer(self) -> nn.Module | None:
        """Grad-CAM's layer: the feature layer, else the model's own ``target_layer`` (None: its last convolution)."""
        if self.feature_layer is not None:
            return self.model.get_submodule(self.feature_layer)
        return getattr(self.model, "target_layer", None)

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        """Logits (B, L), for a per-class sigmoid, and pooled features (B, D) of a batch (B, 3, H, W)."""
        if self.uses_timm_head:
            fmap = self.model.forward_features(x)
            logits, features = self.model.forward_head(fmap), self.model.forward_head(fmap, pre_logits=True)
        elif self.feature_layer is not None:
            logits, features = self._hooked_forward(x)
        else:
            logits, features = _logits_and_features(self.model(x))
            if features is None:
                raise ModelContractError(missing_features_message(self.model))
            features = pooled(features)
        if self.activation == "softmax":
            logits = softmax_as_sigmoid_logits(logits)
        return ClassifierOutput(logits, features)

    def _hooked_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits and the feature layer's output (its last call), pooled; the hook lives for this call."""
        captured: list[torch.Tensor] = []
        handle = self.model.get_submodule(self.feature_layer).register_forward_hook(lambda m, a, out: captured.append(out))
        try:
            logits, _ = _logits_and_features(self.model(x))
        finally:
            handle.remove()
        if not captured:
            raise ModelContractError(f"feature_layer {self.feature_layer!r} did not run in the model's forward pass")
        if not isinstance(captured[-1], torch.Tensor):
            kind = type(captured[-1]).__name__
            raise ModelContractError(f"feature_layer {self.feature_layer!r} returns a {kind}, not a tensor")
        return logits, pooled(captured[-1])


def top_level(model: nn.Module) -> str:
    """The names of a model's first dozen children, for messages."""
    return ", ".join(itertools.islice((name for name, _ in model.named_children()), 12))


def missing_features_message(model: nn.Module) -> str:
    return (f"{type(model).__name__} returns logits alone and has no forward_features/forward_head (timm): give "
            f"feature_layer=, the module whose output is the representation, or its name "
            f"(top-level modules: {top_level(model)})")  # fmt: skip


def layer_name(model: nn.Module, layer: str | nn.Module) -> str:
    """The dotted name of ``layer`` (a submodule or its name) in ``model``; ModelContractError when it is not there."""
    if isinstance(model, torch.jit.ScriptModule):
        raise ModelContractError("a TorchScript model takes no forward hook, so no feature_layer: script a model with "
                                 "forward_features/forward_head (timm) or one returning (logits, features)")  # fmt: skip
    if isinstance(layer, nn.Module):
        name = next((n for n, m in model.named_modules() if m is layer), None)
        if name is None:
            raise ModelContractError(f"feature_layer {type(layer).__name__} is not a module of {type(model).__name__}")
        return name
    try:
        model.get_submodule(layer)
    except AttributeError as e:
        raise ModelContractError(
            f"{type(model).__name__} has no module {layer!r} for feature_layer ({e}); top-level modules: {top_level(model)}"
        ) from e
    return layer


def check_contract(model: FindingAdapter, size: int) -> None:
    """One probe forward of a (2, 3, size, size) batch: logits (2, L), one per label."""
    x = torch.rand(2, 3, size, size, device=model_device(model))
    try:
        with torch.inference_mode():
            out = model(x)
    except ModelContractError:
        raise
    except Exception as e:  # noqa: BLE001 -- whatever the caller's model raises, said with the probe's shape
        raise ModelContractError(
            f"the probe forward of a (2, 3, {size}, {size}) batch in [0, 1] failed: {type(e).__name__}: {e}"
        ) from e
    if tuple(out.logits.shape) != (2, len(model.labels)):
        raise ModelContractError(f"the model returns logits of shape {tuple(out.logits.shape)} for a batch of 2; "
                                 f"expected (2, {len(model.labels)}), one per label of {model.labels}")  # fmt: skip


def as_finding_model(
    model: nn.Module,
    labels: Sequence[str] | None = None,
    feature_layer: str | nn.Module | None = None,
    activation: str = "sigmoid",
    probe_size: int = 224,
) -> FindingAdapter:
    """``model`` as a :class:`FindingAdapter` around its :func:`working_copy`, in eval mode, checked by a probe
    forward. ``labels`` default to ``model.labels`` (a correlax model). Raises ModelContractError naming what is
    missing."""
    labels = labels if labels is not None else getattr(model, "labels", None)
    if labels is None:
        raise ModelContractError(f"{type(model).__name__} has no labels attribute: give labels=[...], one name per logit")
    layer = layer_name(model, feature_layer) if feature_layer is not None else None
    net = FindingAdapter(working_copy(model), labels, layer, activation).eval()
    check_contract(net, probe_size)
    return net
