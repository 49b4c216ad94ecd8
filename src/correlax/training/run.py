"""One training run: crops → Lightning Trainer → best/last checkpoints → exported model with chosen thresholds.

Layout of a run folder::

    RUN/checkpoints/last.ckpt, best.ckpt   Lightning checkpoints (resume from last.ckpt)
    RUN/model.safetensors (+ model.json)  the exported best model, what ``correlax explain/evaluate`` take
    RUN/validation.json                   validation report of the exported model
    RUN/cache/                            prepared images (.npy), unless another cache folder is given
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader

from correlax.crops import CropDataset, CropSettings, MaskAugmentation, PreparedCache
from correlax.data.records import Manifest
from correlax.fileio import write_json
from correlax.evaluation.classification import best_f1_threshold, classification_report
from correlax.models import CheckpointInfo, save_checkpoint
from correlax.models.checkpoint import load_training_checkpoint
from correlax.preprocess import PreprocessSettings
from correlax.training.data import build_datasets
from correlax.training.module import CropClassifierModule
from correlax.training.predict import predict
from correlax.training.resume import EpochSampler, EpochSeeds

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One training run: data, network, crops, augmentation, schedule and devices (the ``train`` command's options)."""
    data: str  # manifest path
    out: str  # run folder
    backbone: str = "paper"
    pretrained: bool | str = True  # True: ImageNet weights; False: random init; str: local weights file
    head: str = "reference"
    labels: tuple[str, ...] | None = None  # None: labels present in the training split
    input_size: int = 256
    preprocess: dict = field(default_factory=lambda: PreprocessSettings().to_dict())
    crops: dict = field(default_factory=lambda: asdict(CropSettings()))
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-5
    min_lr: float = 1e-7
    seed: int = 0
    val_fraction: float = 0.15
    steps_per_epoch: int | None = None  # samples drawn per epoch = steps × batch; None: one pass over the crops
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | None = None  # None: bf16/16 mixed on GPU, 32 on CPU
    cache_dir: str | None = None  # None: RUN/cache
    resume: bool = False
    augment: bool = True
    mask_aug: float = 0.0  # fraction of the crops (see mask_aug_on) masked as CorRELAX masks them
    mask_aug_fill: str = "black"
    mask_aug_on: str = "normal"  # "normal": No Finding crops only; "all": every crop


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to a temporary file and rename it, so an interruption never leaves half a file;
    read with ``weights_only=True`` always (``--resume`` never unpickles code, whatever the environment says)."""

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return load_training_checkpoint(path)

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.save(checkpoint, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def _loader(dataset: CropDataset, config: TrainConfig, train: bool, world_size: int = 1) -> DataLoader:
    kwargs = dict(batch_size=config.batch_size, num_workers=config.num_workers, persistent_workers=config.num_workers > 0)
    if not train:
        return DataLoader(dataset, shuffle=False, **kwargs)
    # Lightning shards this sampler over the ranks (DistributedSamplerWrapper): draw for all of them
    per_rank = config.steps_per_epoch * config.batch_size if config.steps_per_epoch else len(dataset)
    sampler = EpochSampler(dataset.sample_weights(), per_rank * world_size, config.seed)
    return DataLoader(dataset, sampler=sampler, drop_last=per_rank >= config.batch_size, **kwargs)


def _training_spacing(dataset: CropDataset, settings: PreprocessSettings) -> float | None:
    if settings.target_spacing is not None:
        return settings.target_spacing
    if not dataset.spacings:
        return None
    return float(np.median(np.asarray(dataset.spacings)))


def train(config: TrainConfig) -> Path:
    """Train, export the best model to ``RUN/model.safetensors`` and return that path."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    settings = PreprocessSettings.from_dict(config.preprocess)
    manifest = Manifest.load(config.data)
    cache = PreparedCache(settings, config.cache_dir or out / "cache")
    masking = MaskAugmentation(config.mask_aug, config.mask_aug_fill, config.mask_aug_on, seed=config.seed)
    train_set, val_set = build_datasets(
        manifest, config.labels, cache, config.input_size, CropSettings(**config.crops), config.seed,
        config.augment, config.val_fraction, masking if config.mask_aug > 0 else None,
    )
    failures = [{"path": path, "reason": reason} for path, reason in train_set.failures + val_set.failures]
    if len(train_set) == 0:
        raise ValueError(f"{config.data}: no training crops (no readable images with boxes or normal tissue)")
    log.info("crops: %d training, %d validation; labels %s", len(train_set), len(val_set), ", ".join(train_set.labels))
    info = CheckpointInfo(
        labels=train_set.labels,
        backbone=config.backbone,
        input_size=config.input_size,
        preprocess=settings.to_dict(),
        head=config.head,
        training_spacing=_training_spacing(train_set, settings),
        extra={"train": {k: v for k, v in asdict(config).items() if k not in ("resume",)}},
    )
    module = CropClassifierModule(
        info.to_dict(), pretrained=config.pretrained, lr=config.lr, weight_decay=config.weight_decay, min_lr=config.min_lr
    )
    has_val = len(val_set) > 0
    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="best",
        monitor="val_loss" if has_val else None,
        mode="min",
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    gpu = torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda")
    precision = config.precision or (("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if gpu else "32-true")
    trainer = L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=precision,
        callbacks=[checkpoints, TQDMProgressBar(), EpochSeeds(config.seed)],
        plugins=[AtomicCheckpointIO()],
        default_root_dir=out,
        logger=False,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if has_val else 0,
        limit_train_batches=config.steps_per_epoch or 1.0,
    )
    ckpt_path = "last" if config.resume and (out / "checkpoints" / "last.ckpt").exists() else None
    if config.resume and ckpt_path is None:
        log.info("--resume: no %s yet, starting from scratch", out / "checkpoints" / "last.ckpt")
    trainer.fit(
        module,
        train_dataloaders=_loader(train_set, config, train=True, world_size=trainer.world_size),
        val_dataloaders=_loader(val_set, config, train=False) if has_val else None,
        ckpt_path=ckpt_path,
    )
    if not trainer.is_global_zero:
        return out / "model.safetensors"
    return export_best(trainer, module, checkpoints, info, val_set, out, failures)


def export_best(trainer, module, checkpoints, info, val_set, out: Path, failures) -> Path:
    """Reload the best checkpoint, choose per-label thresholds on validation, write the model and its report."""
    best = checkpoints.best_model_path or checkpoints.last_model_path
    if best:
        state = load_training_checkpoint(best)["state_dict"]
        module.load_state_dict(state)
    model = module.model.cpu().eval()
    report = None
    if len(val_set):
        probs, targets = predict(model, val_set, batch_size=64)
        info.thresholds = {label: best_f1_threshold(targets[:, j], probs[:, j]) for j, label in enumerate(info.labels)}
        report = classification_report(targets, probs, info.labels, info.thresholds)
    info.extra["global_step"] = int(trainer.global_step)
    info.extra["best_checkpoint"] = os.path.basename(best) if best else None
    path = save_checkpoint(out / "model.safetensors", model, info)
    write_json(out / "validation.json", {"report": report, "failures": failures})
    return path


def skipped_images(run_dir: Path) -> list[dict]:
    """The images a finished run in ``run_dir`` could not read (``{"path", "reason"}``), from its validation.json
    (runs before this version wrote ``[path, reason]`` pairs)."""
    failures = json.loads((Path(run_dir) / "validation.json").read_text())["failures"]
    return [f if isinstance(f, dict) else {"path": f[0], "reason": f[1]} for f in failures]
