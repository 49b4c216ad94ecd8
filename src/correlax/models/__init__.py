"""Crop classifiers: timm backbones with the reference head, presets, ImageNet weights, checkpoints."""

from correlax.models.backbones import PRESETS, create_backbone, load_backbone_weights
from correlax.models.checkpoint import CheckpointError, CheckpointInfo, load_checkpoint, save_checkpoint
from correlax.models.classifier import CropClassifier
from correlax.models.contract import ClassifierOutput, FindingModel
from correlax.models.factory import create_model

__all__ = [
    "PRESETS",
    "CheckpointError",
    "CheckpointInfo",
    "ClassifierOutput",
    "CropClassifier",
    "FindingModel",
    "create_backbone",
    "create_model",
    "load_backbone_weights",
    "load_checkpoint",
    "save_checkpoint",
]
