"""Crop classifiers: timm backbones with the reference head, presets, ImageNet weights, checkpoints.

Names are imported on first use, so that ``correlax.models.presets`` (the CLI's help) does not import torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "PRESETS": "correlax.models.presets",
    "create_backbone": "correlax.models.backbones",
    "load_backbone_weights": "correlax.models.backbones",
    "CheckpointError": "correlax.models.checkpoint",
    "CheckpointInfo": "correlax.models.checkpoint",
    "load_checkpoint": "correlax.models.checkpoint",
    "save_checkpoint": "correlax.models.checkpoint",
    "CropClassifier": "correlax.models.classifier",
    "ClassifierOutput": "correlax.models.contract",
    "FindingModel": "correlax.models.contract",
    "create_model": "correlax.models.factory",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
