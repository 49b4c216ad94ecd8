"""Training of the crop classifier with PyTorch Lightning, and crop-level evaluation of saved models."""

from correlax.training.data import build_datasets, labels_in, reference_augmentation, train_val_records
from correlax.training.module import CropClassifierModule
from correlax.training.predict import evaluate_checkpoint, predict
from correlax.training.run import TrainConfig, skipped_images, train

__all__ = [
    "CropClassifierModule",
    "TrainConfig",
    "build_datasets",
    "evaluate_checkpoint",
    "labels_in",
    "predict",
    "reference_augmentation",
    "skipped_images",
    "train",
    "train_val_records",
]
