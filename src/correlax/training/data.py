"""Training data: label choice, the patient-wise validation split, augmentations, crop data sets."""

from __future__ import annotations

import logging

import torch
from torchvision.transforms import v2

from correlax.crops import CropDataset, CropSettings, MaskAugmentation, PreparedCache
from correlax.data.records import ImageRecord, Manifest
from correlax.data.split import patient_split
from correlax.labels import LABELS, NO_FINDING

log = logging.getLogger(__name__)


def labels_in(records: list[ImageRecord]) -> tuple[str, ...]:
    """Labels with at least one box in ``records``, plus No Finding when there are normal images; canonical order."""
    present = {f.label for r in records for f in r.findings if f.box is not None}
    if any(r.is_normal for r in records):
        present.add(NO_FINDING)
    return tuple(label for label in LABELS if label in present)


def train_val_records(manifest: Manifest, val_fraction: float = 0.15, seed: int = 0) -> tuple[list, list]:
    """The manifest's ``train`` and ``val`` splits; without a ``val`` split, one carved out of ``train`` by patient."""
    train, val = manifest.split("train"), manifest.split("val")
    if not train:
        raise ValueError(f"manifest {manifest.source or manifest.root} has no 'train' split")
    if not val:
        resplit = patient_split(train, {"train": 1 - val_fraction, "val": val_fraction}, seed=seed)
        train = [r for r in resplit if r.split == "train"]
        val = [r for r in resplit if r.split == "val"]
        log.info("no 'val' split: %d images of %d patients held out by patient", len(val), len({r.patient_id for r in val}))
    return train, val


def reference_augmentation() -> v2.Transform:
    """Flips, rotation within ±30°, and with p = 0.5 colour jitter plus a random permutation of the channels."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomRotation(30),
            v2.RandomApply([v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2), v2.RandomChannelPermutation()], p=0.5),
        ]
    )


class ClampUnit(torch.nn.Module):
    """Keep augmented pixels in [0, 1], the model's input range."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_(0.0, 1.0)


def build_datasets(
    manifest: Manifest,
    labels: tuple[str, ...] | None,
    cache: PreparedCache,
    input_size: int,
    crop_settings: CropSettings,
    seed: int = 0,
    augment: bool = True,
    val_fraction: float = 0.15,
    mask_aug: MaskAugmentation | None = None,
) -> tuple[CropDataset, CropDataset]:
    """Training (augmented, ``mask_aug`` on top) and validation crop sets; ``labels=None`` takes the labels
    present in training."""
    train_records, val_records = train_val_records(manifest, val_fraction, seed)
    labels = labels or labels_in(train_records)
    transform = v2.Compose([reference_augmentation(), ClampUnit()]) if augment else None
    train = CropDataset(manifest, train_records, labels, cache, input_size, crop_settings, seed, transform, mask_aug)
    val = CropDataset(manifest, val_records, labels, cache, input_size, crop_settings, seed + 1)
    return train, val
