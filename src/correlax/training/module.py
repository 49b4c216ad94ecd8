"""The LightningModule: focal loss, Adam, cosine decay, and validation metrics (docs/method.md §9)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torchvision.ops import sigmoid_focal_loss

from correlax.evaluation.classification import precision_recall_f1, roc_auc
from correlax.models import CheckpointInfo, create_model


class CropClassifierModule(L.LightningModule):
    """Wraps a :class:`~correlax.models.CropClassifier` built from ``info`` (a plain dict, so that the
    Lightning checkpoint stores only primitive hyper-parameters and loads with ``weights_only=True``)."""

    def __init__(
        self,
        info: dict,
        pretrained: bool | str = False,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        min_lr: float = 1e-7,
        focal_alpha: float = 0.8,
        focal_gamma: float = 2.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["pretrained"])
        meta = CheckpointInfo.from_dict(info)
        self.model = create_model(meta.backbone, meta.labels, pretrained=pretrained, head=meta.head)
        self._val_probs: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor):
        """The classifier's output for a batch."""
        return self.model(x)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        return sigmoid_focal_loss(logits.float(), targets, alpha=hp.focal_alpha, gamma=hp.focal_gamma, reduction="sum")

    def training_step(self, batch, batch_idx):
        """The focal loss of one batch, summed over crops and labels (logged per crop)."""
        x, y = batch
        loss = self._loss(self.model(x).logits, y)
        self.log("train_loss", loss / len(x), prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch, batch_idx):
        """Log the validation loss and keep the probabilities for the epoch's metrics."""
        x, y = batch
        logits = self.model(x).logits
        self.log("val_loss", self._loss(logits, y) / len(x), prog_bar=True, on_epoch=True, sync_dist=True, batch_size=len(x))
        self._val_probs.append(torch.sigmoid(logits.float()).cpu())
        self._val_targets.append(y.cpu())

    def on_validation_epoch_end(self):
        """Log the epoch's validation ROC-AUC and F1 per label."""
        if not self._val_probs:
            return
        probs = torch.cat(self._val_probs).numpy()
        targets = torch.cat(self._val_targets).numpy() > 0.5
        self._val_probs.clear()
        self._val_targets.clear()
        f1s, aucs = [], []
        for j in range(probs.shape[1]):
            if targets[:, j].any():
                f1s.append(precision_recall_f1(targets[:, j], probs[:, j] >= 0.5)[2])
                aucs.append(roc_auc(targets[:, j], probs[:, j]))
        # per-rank metrics (each rank sees its shard); the mean over ranks is logged
        self.log("val_f1", float(np.mean(f1s)) if f1s else 0.0, prog_bar=True, sync_dist=True)
        self.log("val_auc", float(np.nanmean(aucs)) if aucs else 0.0, sync_dist=True)

    def configure_optimizers(self):
        """Adam with a cosine learning-rate schedule over all training steps."""
        hp = self.hparams
        optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=hp.min_lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
