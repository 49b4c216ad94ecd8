"""The crop classifier: any timm backbone (pooled features) plus the reference head (docs/method.md §2)."""

from __future__ import annotations

import torch
from torch import nn

from correlax.models.contract import ClassifierOutput

HEADS = ("reference", "linear")


def make_head(kind: str, in_features: int, num_labels: int) -> nn.Module:
    """``reference``: Dropout(0.5) → Linear(D→512) → ReLU → Linear(512→L, no bias); ``linear``: Linear(D→L)."""
    if kind == "reference":
        return nn.Sequential(
            nn.Dropout(0.5), nn.Linear(in_features, 512), nn.ReLU(inplace=True), nn.Linear(512, num_labels, bias=False)
        )
    if kind == "linear":
        return nn.Linear(in_features, num_labels)
    raise ValueError(f"unknown head {kind!r}; known: {', '.join(HEADS)}")


class CropClassifier(nn.Module):
    """Multi-label classifier of (B, 3, H, W) crops in [0, 1]; returns logits and pooled features."""

    def __init__(self, backbone: nn.Module, labels: tuple[str, ...], head: str = "reference", backbone_name: str = ""):
        super().__init__()
        self.backbone = backbone
        self.labels = tuple(labels)
        self.head_kind = head
        self.backbone_name = backbone_name
        self.head = make_head(head, backbone.num_features, len(self.labels))

    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        """Logits (B, L) and pooled features (B, D) of a (B, 3, H, W) batch."""
        features = self.backbone(x)
        return ClassifierOutput(self.head(features), features)
