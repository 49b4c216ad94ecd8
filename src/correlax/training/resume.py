"""Exact resume: every random draw of a training epoch depends only on (seed, epoch), so a run resumed from
``last.ckpt`` (saved at the end of an epoch) makes the model an uninterrupted run makes.

Two sources of randomness change from epoch to epoch: the crops each epoch draws (:class:`EpochSampler`)
and the global generators of Python, NumPy and torch (augmentation, mask augmentation, dropout, the data
loader workers' seeds), reseeded at the start of each epoch by :class:`EpochSeeds`. Lightning restores the
weights, optimizer, scheduler and epoch counter; nothing else carries over from one epoch to the next.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

SAMPLER_STREAM, GLOBAL_STREAM = 0, 1


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 32-bit seed for one ``stream`` of draws in one epoch (distinct streams never share a seed sequence)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class EpochSampler(WeightedRandomSampler):
    """Weighted draws with replacement whose order in epoch ``e`` is a function of (seed, e) alone. Lightning
    calls :meth:`set_epoch` before each epoch (also through its distributed wrapper), with the restored epoch
    on resume."""

    def __init__(self, weights: Sequence[float] | torch.Tensor, num_samples: int, seed: int):
        super().__init__(weights, num_samples, replacement=True, generator=torch.Generator())
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator.manual_seed(epoch_seed(self.seed, self.epoch, SAMPLER_STREAM))
        return super().__iter__()


class EpochSeeds(L.Callback):
    """Reseed Python, NumPy and torch at the start of every training epoch from (seed, epoch)."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        L.seed_everything(epoch_seed(self.seed, trainer.current_epoch, GLOBAL_STREAM), workers=True, verbose=False)
