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

from correlax.settings import MASK_FILLS, MASK_SCOPES

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


def cell_uniforms(seed: int, window_ids: torch.Tensor, mask_ids: torch.Tensor, grid: int) -> torch.Tensor:
    """Uniforms in [0, 1) (B, grid·grid) float64, one per cell of the pairs (window_ids[b], mask_ids[b])."""
    dev = window_ids.device
    h = _mix(torch.full_like(window_ids, _signed((seed * _GOLDEN) & ((1 << 64) - 1))))
    h = _mix(h + window_ids.long() * _signed(_GOLDEN))
    h = _mix(h + mask_ids.long() * _signed(_GOLDEN))
    cells = torch.arange(grid * grid, device=dev, dtype=torch.int64)
    z = _mix(h[:, None] + (cells[None] + 1) * _signed(_GOLDEN))
    return _shr(z, 11).double() * 2.0**-53


def mask_grids(
    seed: int, window_ids: torch.Tensor, mask_ids: torch.Tensor, grid: int, keep_prob: float
) -> torch.Tensor:
    """Binary cell grids (B, grid, grid) float32 for the pairs (window_ids[b], mask_ids[b]): each cell kept with
    probability ``keep_prob`` (the paper's masks)."""
    return (cell_uniforms(seed, window_ids, mask_ids, grid) < keep_prob).float().view(-1, grid, grid)


def scoped_mask_grids(
    seed: int, window_ids: torch.Tensor, mask_ids: torch.Tensor, keep_prob: float, tissue_cells: torch.Tensor, scope: str
) -> torch.Tensor:
    """Cell grids (B, g, g) that hide only tissue: the cells of ``tissue_cells`` (B, g, g) bool are the ones a mask
    may hide, every other cell is kept.

    "tissue": each tissue cell hidden with probability 1 − keep_prob (the paper's draw, restricted to tissue);
    "balanced": exactly round((1 − keep_prob)·n) of a window's n tissue cells hidden, those with the smallest
    uniforms, so every mask of a window hides the same amount of tissue (the hidden tissue fraction, which lowers
    the similarity and every class's probability at once, no longer varies between masks).
    """
    b, g, _ = tissue_cells.shape
    u = cell_uniforms(seed, window_ids, mask_ids, g)
    tissue = tissue_cells.reshape(b, g * g)
    if scope == "tissue":
        return ((u < keep_prob) | ~tissue).float().view(b, g, g)
    if scope != "balanced":
        raise ValueError(f"mask scope must be one of {MASK_SCOPES}, got {scope!r}")
    rank = torch.where(tissue, u, 2.0).argsort(dim=1).argsort(dim=1)  # tissue cells first, in random order
    hidden = rank < torch.round((1 - keep_prob) * tissue.sum(dim=1, keepdim=True))
    return (~hidden).float().view(b, g, g)


def cell_sums(pixels: torch.Tensor, grid: int) -> torch.Tensor:
    """``Aᵀ X A`` for (B, W, W) pixel values X and A the (W, g) weights of :func:`upsample`: (B, g, g) float64.
    For any cell grid G, Σ_pixels X · upsample(G) = Σ_cells G · cell_sums(X), so a mask's share of a pixel
    quantity (such as the breast pixels it keeps) is one product per mask."""
    weights = _linear_weights(pixels.shape[-1], grid, pixels.device).double()
    return weights.T @ pixels.double() @ weights


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
