"""Crop predictions of a model over a crop data set, and the evaluation of a model on a manifest split."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from correlax.crops import CropDataset, CropSettings, PreparedCache
from correlax.data.records import ImageRecord, Manifest
from correlax.evaluation.classification import classification_report
from correlax.models import CropClassifier, load_checkpoint
from correlax.settings import CROP_SCALES


@torch.no_grad()
def predict(model: CropClassifier, dataset: CropDataset, batch_size: int = 64, device: str | None = None):
    """(probabilities (N, L), targets (N, L) bool) in the dataset's order; the dataset's labels must be the model's."""
    if tuple(dataset.labels) != tuple(model.labels):
        raise ValueError(f"data set labels {dataset.labels} differ from the model's {model.labels}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    probs = []
    for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            probs.append(torch.sigmoid(model(x.to(device)).logits.float()).cpu())
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(model.labels)))
    return p, dataset.targets.numpy() > 0.5


@dataclass
class CropPredictions:
    """A model's probabilities on the crops of some records, with what is needed to score them."""

    probs: np.ndarray  # (N, L)
    targets: np.ndarray  # (N, L) bool
    labels: tuple[str, ...]
    thresholds: dict[str, float]  # chosen on validation when the model was trained
    failures: list[dict]  # {"path", "reason"} of unreadable images
    image_ids: tuple[str, ...] = ()  # (N,) the image each crop was cut from

    def patients(self, records: list[ImageRecord]) -> np.ndarray:
        """(N,) the patient of each crop, looked up in ``records`` (those the crops were cut from)."""
        patient_of = {r.image_id: str(r.patient_id) for r in records}
        return np.array([patient_of[i] for i in self.image_ids], dtype=str)



def evaluation_crops(info, scale: str = "trained", crops_per_box: int = 4, crops_per_normal_image: int = 4) -> CropSettings:
    """The crops a model is scored on. "trained" (the default everywhere crops are scored): the protocol the model
    was trained with, as its checkpoint records it (the paper's multi-scale crops when it records none, as models
    trained before the window scale existed); "multi": the paper's box-relative multi-scale crops; "window": squares
    near the model's input side. The counts are the evaluation's own, and No Finding crops come only from images
    without findings (no skin-line crops), so that scores compare across training protocols."""
    if scale not in CROP_SCALES:
        raise ValueError(f"crop scale must be one of {CROP_SCALES}, got {scale!r}")
    trained = (info.extra.get("train") or {}).get("crops")
    if scale == "trained" and trained:
        base = CropSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in trained.items()})
    elif scale == "window":
        base = CropSettings(window_side=float(info.input_size))
    else:
        base = CropSettings()
    return replace(base, crops_per_box=crops_per_box, crops_per_normal_image=crops_per_normal_image,
                   normal_crops_per_boxed_image=0, skin_crops_per_image=0)  # fmt: skip


def crop_predictions(
    model_path: str | Path,
    manifest: Manifest,
    records: list[ImageRecord],
    cache_dir: str | Path | None = None,
    crop_settings: CropSettings = CropSettings(),
    seed: int = 1234,
    batch_size: int = 64,
) -> CropPredictions:
    """Probabilities of a saved model on crops of ``records``: the training sampler with a fixed seed, no
    augmentation; the checkpoint's pre-processing and input size."""
    model, info = load_checkpoint(model_path)
    cache = PreparedCache(info.preprocess_settings, cache_dir)
    dataset = CropDataset(manifest, records, info.labels, cache, info.input_size, crop_settings, seed)
    probs, targets = predict(model, dataset, batch_size)
    failures = [{"path": p, "reason": r} for p, r in dataset.failures]
    image_ids = tuple(str(c.image_id) for c in dataset.crops)
    return CropPredictions(probs, targets, tuple(info.labels), dict(info.thresholds or {}), failures, image_ids)


def evaluate_checkpoint(
    model_path: str | Path,
    manifest_path: str | Path,
    split: str = "test",
    cache_dir: str | Path | None = None,
    crop_settings: CropSettings = CropSettings(),
    seed: int = 1234,
    batch_size: int = 64,
    spacing: float | None = None,
) -> dict:
    """Crop-level report (see :func:`classification_report`) of a saved model on one split of a manifest,
    at 0.5 and at the model's validation thresholds (crops as :func:`crop_predictions`). ``spacing`` (mm)
    stands in for images whose file and manifest record state none.
    """
    manifest = Manifest.load(manifest_path)
    records = manifest.split(split)
    if not records:
        raise ValueError(f"{manifest_path}: no images in split {split!r}")
    if spacing is not None:
        records = [r if r.spacing else replace(r, spacing=(spacing, spacing)) for r in records]
    pred = crop_predictions(model_path, manifest, records, cache_dir, crop_settings, seed, batch_size)
    report = classification_report(pred.targets, pred.probs, pred.labels, pred.thresholds or None)
    report.update(model=str(model_path), data=str(manifest_path), split=split, images=len(records), failures=pred.failures)
    return report
