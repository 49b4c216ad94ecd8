"""The batched CorRELAX engine (docs/method.md §5): windows × masks in large forward batches, statistics from sums.

Per window it keeps the unmasked probabilities p and features z, and, over its masks,
running sums for the Pearson statistics and the finer maps' cell sums (Σ d_k·g_k, Σ (d_k − 1)²·g_k,
Σ P_k·g_k, Σ g_k with g_k the mask's 8×8 grid: the masks are linear upsamplings of the grids, so the
per-pixel sums are the upsampled cell sums).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from correlax.masks import apply_masks, mask_grids, upsample
from correlax.explain.forward import BatchRunner
from correlax.explain.settings import CorrelaxSettings
from correlax.explain.stats import PearsonSums


@dataclass
class WindowStats:
    """Statistics of the windows that were run, in the order given (rows)."""

    prediction: torch.Tensor  # (N, L) unmasked probabilities
    corr_pred: torch.Tensor  # (N, L) Pearson(d, P_c)
    corr_dist: torch.Tensor  # (N,) Pearson(d, q)
    n_masks: torch.Tensor  # (N,) masks used
    mean_dist: torch.Tensor  # (N,) mean of d_k over the window's masks
    relax_sum: torch.Tensor  # (N, g, g) Σ d_k g_k
    relax_sq_sum: torch.Tensor  # (N, g, g) Σ (d_k − 1)² g_k (shifted by 1 like the Pearson sums)
    rise_sum: torch.Tensor  # (N, L, g, g) Σ P_k,c g_k
    mask_sum: torch.Tensor  # (N, g, g) Σ g_k
    se_max: torch.Tensor  # (N,) largest standard error of the window's correlations


def mask_rounds(settings: CorrelaxSettings) -> list[tuple[int, int]]:
    """Mask index ranges run one after the other: all at once, or rounds when a stopping rule is on."""
    k, r = settings.n_masks, settings.mask_round if settings.se_tol > 0 else settings.n_masks
    return [(k0, min(k, k0 + r)) for k0 in range(0, k, r)] if k else []  # no masks: the unmasked passes alone


@dataclass(frozen=True)
class WindowJob:
    """The windows of one image and how to run them.

    ``windows``: the (gh, gw, 3, W, W) view of the padded crop. Masks: ``mask_bank`` (K, g, g) cell grids
    shared by every window when given, else drawn per (window, mask) from the seed (one shared set when
    ``settings.shared_masks``).
    """

    runner: BatchRunner
    windows: torch.Tensor
    settings: CorrelaxSettings
    mask_bank: torch.Tensor | None = None


def representation_similarity(z0_unit: torch.Tensor, which: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """d_k: the cosine similarity (float64) of each masked view's features ``feats`` (B, F) with the unmasked
    features of its window, ``z0_unit[which]`` ((U, F) unit vectors, float64). One (B, F) × (F, U) product:
    a batch holds few windows (U), so no (B, F) gather is needed."""
    z = feats.double()
    dots = (z @ z0_unit.T).gather(1, which[:, None])[:, 0]
    return dots / torch.linalg.vector_norm(z, dim=1).clamp(min=1e-12)


def window_statistics(
    job: WindowJob, window_ids: torch.Tensor, progress: Callable[[int, int], None] | None = None
) -> WindowStats:
    """Run the windows ``window_ids`` (linear indices into ``job.windows``' (gh, gw) grid).
    ``progress(done, total)`` hears of every batch: forward passes run of at most n·(1 + K).
    """
    runner, windows, settings, mask_bank = job.runner, job.windows, job.settings, job.mask_bank
    dev = runner.device
    gw, size = windows.shape[1], windows.shape[-1]
    ids = window_ids.to(dev)
    n = len(ids)
    total, done = n * (1 + settings.n_masks), 0

    def report(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    def gather(index: torch.Tensor) -> torch.Tensor:
        return windows[index // gw, index % gw]

    # unmasked passes
    p0 = torch.empty(0, device=dev)
    z0 = torch.empty(0, device=dev)

    def consume_plain(start, stop, probs, feats, _):
        nonlocal p0, z0
        if p0.numel() == 0:
            p0 = probs.new_empty(n, probs.shape[1])
            z0 = feats.new_empty(n, feats.shape[1])
        p0[start:stop], z0[start:stop] = probs, feats
        report(stop - start)

    runner.stream(n, lambda a, b: (gather(ids[a:b]), None), consume_plain)
    n_labels, g = p0.shape[1], settings.grid
    z0_unit = F.normalize(z0.double(), dim=1)  # d_k = z0·z_k / (|z0| |z_k|): the unmasked side once per window

    sums = PearsonSums.zeros(n, n_labels + 1, dev)  # y series: P_c (L of them), then q
    # cell sums Σ w_k g_k for the weights w = d, (d − 1)², 1, P_1 … P_L: one accumulator, one index_add_ per batch
    cells = torch.zeros(n, 3 + n_labels, g, g, dtype=torch.float64, device=dev)
    bank = mask_bank.to(dev, torch.float32) if mask_bank is not None else None

    live = torch.arange(n, device=dev)  # rows still drawing masks
    for k0, k1 in mask_rounds(settings):
        def build(a: int, b: int, rows_of_round=live, k0=k0, nk=k1 - k0):
            # pairs a..b-1 are (window, mask) = divmod(pair, nk): the batch's windows are the consecutive rows
            # first..last, each gathered from the image once and repeated for its masks (no device sync)
            pair = torch.arange(a, b, device=dev)
            first, last = a // nk, (b - 1) // nk
            unique = rows_of_round[first : last + 1]
            inverse = pair // nk - first
            rows = unique[inverse]
            k = k0 + pair % nk
            if bank is not None:
                grids = bank[k]
            else:
                wid = torch.zeros_like(rows) if settings.shared_masks else ids[rows]
                grids = mask_grids(settings.seed, wid, k, g, settings.keep_prob)
            views = apply_masks(gather(ids[unique]).index_select(0, inverse), upsample(grids, size), settings.mask_fill, g)
            return views, (rows, grids, unique, inverse)

        def consume(a, b, probs, feats, extra):
            rows, grids, unique, inverse = extra
            d = representation_similarity(z0_unit[unique], inverse, feats)
            q = F.cosine_similarity(p0[rows], probs, dim=1)
            # shift by a value near the mean: 1 for the similarities, p for the probabilities
            sums.add(rows, d - 1, torch.cat([probs - p0[rows], (q - 1)[:, None]], dim=1))
            weights = torch.cat([d[:, None], ((d - 1) ** 2)[:, None], torch.ones_like(d)[:, None], probs], dim=1)
            cells.index_add_(0, rows, weights[:, :, None, None] * grids.double()[:, None])
            report(b - a)

        runner.stream(len(live) * (k1 - k0), build, consume)
        if settings.se_tol > 0:
            se = sums.standard_error()[live].amax(dim=1)
            live = live[se >= settings.se_tol]
            if len(live) == 0:
                break

    corr = sums.correlation().float()
    return WindowStats(
        prediction=p0,
        corr_pred=corr[:, :n_labels],
        corr_dist=corr[:, n_labels],
        n_masks=sums.n.long(),
        mean_dist=(sums.sx / sums.n.clamp(min=1) + 1).float(),
        relax_sum=cells[:, 0],
        relax_sq_sum=cells[:, 1],
        rise_sum=cells[:, 3:],
        mask_sum=cells[:, 2],
        se_max=sums.standard_error().amax(dim=1).float(),
    )
