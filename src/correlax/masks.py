"""RELAX masks (docs/method.md §5): an 8x8 grid of cells kept with probability p, bilinearly upsampled, and
how a mask is applied to a view: ``x·m + fill·(1 − m)`` with a black (the paper's), mean or blurred fill.
The explainer and the training's mask augmentation share them, so they sit below both layers.

The cells are drawn from a counter-based hash of (seed, window, mask, cell) rather than a
stateful generator, so a mask depends only on those four numbers: the same on CPU and GPU,
whatever the batch size or the order in which windows and masks are run.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from correlax.settings import MASK_FILLS

_GOLDEN = 0x9E3779B97F4A7C15
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64 finaliser; int64 arithmetic wraps like uint64."""
    z = (z ^ _shr(z, 30)) * _signed(_MUL1)
    z = (z ^ _shr(z, 27)) * _signed(_MUL2)
    return z ^ _shr(z, 31)


def mask_grids(
    seed: int, window_ids: torch.Tensor, mask_ids: torch.Tensor, grid: int, keep_prob: float
) -> torch.Tensor:
    """Binary cell grids (B, grid, grid) float32 for the pairs (window_ids[b], mask_ids[b])."""
    dev = window_ids.device
    h = _mix(torch.full_like(window_ids, _signed((seed * _GOLDEN) & ((1 << 64) - 1))))
    h = _mix(h + window_ids.long() * _signed(_GOLDEN))
    h = _mix(h + mask_ids.long() * _signed(_GOLDEN))
    cells = torch.arange(grid * grid, device=dev, dtype=torch.int64)
    z = _mix(h[:, None] + (cells[None] + 1) * _signed(_GOLDEN))
    u = _shr(z, 11).double() * 2.0**-53  # uniform in [0, 1)
    return (u < keep_prob).float().view(-1, grid, grid)


@functools.lru_cache(maxsize=16)
def _linear_weights(size: int, grid: int, device: torch.device) -> torch.Tensor:
    """(size, grid) weights of 1-D linear upsampling (align_corners=False): row i mixes the cells that output
    pixel i lies between, as ``F.interpolate`` weighs them."""
    eye = torch.eye(grid, device=device)[:, None, :]  # grid one-hot signals (N, C=1, L=grid)
    return F.interpolate(eye, size=size, mode="linear", align_corners=False)[:, 0, :].T.contiguous()


def upsample(grids: torch.Tensor, size: int) -> torch.Tensor:
    """(B, g, g) cell grids -> (B, 1, size, size) masks, bilinear, align_corners=False.

    Bilinear upsampling is separable, so it runs as two small matrix products, ``A · grid · Aᵀ`` with A the
    (size, g) linear weights: cheaper than ``F.interpolate`` on the CPU, where building the masks competes with the
    network for the cores. With size / g a power of two the weights are dyadic fractions and
    binary grids come out bit for bit as ``F.interpolate`` gives them."""
    weights = _linear_weights(size, grids.shape[-1], grids.device)
    return (weights @ grids.float() @ weights.T)[:, None]


def fill_of(views: torch.Tensor, fill: str, grid: int) -> torch.Tensor:
    """What hidden pixels of the (B, C, W, W) ``views`` show: their per-channel mean ("mean", (B, C, 1, 1)),
    or a Gaussian-blurred copy ("blur", σ = half a mask cell, W / (2·grid) px)."""
    if fill == "mean":
        return views.mean(dim=(-2, -1), keepdim=True)
    if fill == "blur":
        sigma = views.shape[-1] / (2 * grid)
        size = 2 * math.ceil(3 * sigma) + 1
        return gaussian_blur(views, [size, size], [sigma, sigma])
    raise ValueError(f"mask fill must be one of {MASK_FILLS}, got {fill!r}")


def apply_masks(views: torch.Tensor, masks: torch.Tensor, fill: str = "black", grid: int = 8) -> torch.Tensor:
    """Masked views ``x·m + fill·(1 − m)``: (B, C, W, W) views, (B, 1, W, W) masks in [0, 1].
    "black" is the plain product ``x·m`` (the paper's masking)."""
    if fill == "black":
        return views * masks
    return views * masks + fill_of(views, fill, grid) * (1 - masks)
