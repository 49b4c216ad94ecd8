"""``create_model``: a backbone by name plus a head, for a tuple of labels."""

from __future__ import annotations

from pathlib import Path

from correlax.labels import check_label
from correlax.models.backbones import create_backbone
from correlax.models.classifier import CropClassifier


def create_model(
    backbone: str, labels, pretrained: bool | str | Path = False, head: str = "reference"
) -> CropClassifier:
    """A :class:`CropClassifier` on a timm backbone (a preset such as ``"paper"``, ``"lite0"``, ``"tiny"``, or
    any timm model name); see :func:`correlax.models.backbones.create_backbone` for ``pretrained``."""
    labels = tuple(check_label(label) for label in labels)
    if not labels:
        raise ValueError("a model needs at least one label")
    return CropClassifier(create_backbone(backbone, pretrained), labels, head=head, backbone_name=backbone)
