"""RELAX masks (docs/method.md §5): an 8x8 grid of cells kept with probability p, bilinearly upsampled.

The cells are drawn from a counter-based hash of (seed, window, mask, cell) rather than a
stateful generator, so a mask depends only on those four numbers: the same on CPU and GPU,
whatever the batch size or the order in which windows and masks are run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def upsample(grids: torch.Tensor, size: int) -> torch.Tensor:
    """(B, g, g) cell grids -> (B, 1, size, size) masks, bilinear, align_corners=False."""
    return F.interpolate(grids[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
