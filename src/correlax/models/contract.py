"""The model contract CorRELAX explains (docs/method.md §2)."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch


class ClassifierOutput(NamedTuple):
    """A classifier's output: multi-label logits and the pooled features before the head."""
    logits: torch.Tensor  # (B, L), multi-label: apply sigmoid, not softmax
    features: torch.Tensor  # (B, D), the pooled representation before the head


class FindingModel(Protocol):
    """Anything callable on a (B, 3, H, W) float batch in [0, 1] returning :class:`ClassifierOutput`."""

    labels: tuple[str, ...]

    def __call__(self, x: torch.Tensor) -> ClassifierOutput: ...
