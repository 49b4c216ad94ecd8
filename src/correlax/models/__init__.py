"""Crop classifiers: timm backbones with the reference head, presets, ImageNet weights, checkpoints.

Names are imported on first use, so that ``correlax.models.presets`` (the CLI's help) does not import torch.
"""

from __future__ import annotations

from correlax.lazy import lazy_attributes

_LAZY = {
    "PRESETS": "correlax.models.presets",
    "FindingAdapter": "correlax.models.adapter",
    "ModelContractError": "correlax.models.adapter",
    "as_finding_model": "correlax.models.adapter",
    "ModelFile": "correlax.models.model_file",
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

__getattr__ = lazy_attributes(__name__, _LAZY)
