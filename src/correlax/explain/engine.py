"""The batched CorRELAX engine (docs/method.md §5): windows × masks in large forward batches, statistics from sums.

Per window it keeps the unmasked probabilities p and features z, and, over its masks,
running sums for the Pearson statistics (with the hidden tissue fraction t_k of each mask as a third variable, for
the partial correlation of d and P_c given t) and the finer maps' cell sums (Σ d_k·g_k, Σ (d_k − 1)²·g_k,
Σ P_k·g_k, Σ g_k with g_k the mask's 8×8 grid: the masks are linear upsamplings of the grids, so the
per-pixel sums are the upsampled cell sums).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from correlax.masks import apply_masks, cell_sums, mask_grids, scoped_mask_grids, upsample
from correlax.explain.forward import BatchRunner
from correlax.explain.settings import CorrelaxSettings
from correlax.explain.stats import PearsonSums, partial_correlation


@dataclass
class WindowStats:
    """Statistics of the windows that were run, in the order given (rows)."""

    prediction: torch.Tensor  # (N, L) unmasked probabilities
    corr_pred: torch.Tensor  # (N, L) Pearson(d, P_c)
    corr_partial: torch.Tensor  # (N, L) partial correlation of d and P_c given the hidden tissue fraction t
    cov_pred: torch.Tensor  # (N, L) covariance of d and P_c: the correlation with the spread of both kept
    corr_tissue_dist: torch.Tensor  # (N,) Pearson(t, d)
    corr_tissue_pred: torch.Tensor  # (N, L) Pearson(t, P_c)
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

    ``windows``: the (gh, gw, 3, W, W) view of the padded crop; ``tissue``: the (gh, gw, W, W) view of its breast
    pixels (1 breast, 0 not; None: every pixel counts as breast). Masks: ``mask_bank`` (K, g, g) cell grids
    shared by every window when given, else drawn per (window, mask) from the seed (one shared set when
    ``settings.shared_masks``), hiding only breast cells when ``settings.mask_scope`` says so.
    """

    runner: BatchRunner
    windows: torch.Tensor
    settings: CorrelaxSettings
    mask_bank: torch.Tensor | None = None
    tissue: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mask_bank is not None and self.settings.mask_scope != "all":
            raise ValueError(f"a fixed mask bank cannot follow the breast (mask_scope={self.settings.mask_scope!r})")


def tissue_cells(job: WindowJob, index: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(n, g, g) float64 :func:`~correlax.masks.cell_sums` of the breast pixels of the windows ``index`` (linear
    indices into the grid): Σ_cells G·T is how much breast a mask with cell grid G keeps."""
    g, size, gw = job.settings.grid, job.windows.shape[-1], job.windows.shape[1]
    if job.tissue is None:
        return cell_sums(torch.ones(1, size, size, device=index.device), g).expand(len(index), g, g)
    parts = [cell_sums(job.tissue[i // gw, i % gw].to(index.device), g) for i in index.split(chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, g, g, dtype=torch.float64, device=index.device)


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
    breast = tissue_cells(job, ids)  # (n, g, g)
    breast_total = breast.sum(dim=(1, 2))
    breast_share = breast / cell_sums(torch.ones(1, size, size, device=dev), g)  # breast share of each cell, 0..1
    hidden_mean = 1 - settings.keep_prob  # the shift of t (Pearson is shift-invariant)

    sums = PearsonSums.zeros(n, n_labels + 2, dev)  # y series: P_c (L of them), q, then t
    tissue_sums = PearsonSums.zeros(n, n_labels, dev)  # x = t, y = P_c: the partial correlation's third term
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
                if settings.mask_scope == "all":
                    grids = mask_grids(settings.seed, wid, k, g, settings.keep_prob)
                else:  # a cell counts as breast when at least half of what it covers is
                    breast_cells = breast_share[rows] >= 0.5
                    grids = scoped_mask_grids(settings.seed, wid, k, settings.keep_prob, breast_cells, settings.mask_scope)
            views = apply_masks(gather(ids[unique]).index_select(0, inverse), upsample(grids, size), settings.mask_fill, g)
            return views, (rows, grids, unique, inverse)

        def consume(a, b, probs, feats, extra):
            rows, grids, unique, inverse = extra
            d = representation_similarity(z0_unit[unique], inverse, feats)
            q = F.cosine_similarity(p0[rows], probs, dim=1)
            kept = (grids.double() * breast[rows]).sum(dim=(1, 2))
            total = breast_total[rows]
            t = torch.where(total > 0, 1 - kept / total.clamp(min=1e-12), 0.0)  # share of the window's breast hidden
            # shift by a value near the mean: 1 for the similarities, p for the probabilities, 1 − keep_prob for t
            dp = probs - p0[rows]
            sums.add(rows, d - 1, torch.cat([dp, (q - 1)[:, None], (t - hidden_mean)[:, None]], dim=1))
            tissue_sums.add(rows, t - hidden_mean, dp)
            weights = torch.cat([d[:, None], ((d - 1) ** 2)[:, None], torch.ones_like(d)[:, None], probs], dim=1)
            cells.index_add_(0, rows, weights[:, :, None, None] * grids.double()[:, None])
            report(b - a)

        runner.stream(len(live) * (k1 - k0), build, consume)
        if settings.se_tol > 0:
            se = sums.standard_error()[live, : n_labels + 1].amax(dim=1)
            live = live[se >= settings.se_tol]
            if len(live) == 0:
                break

    corr = sums.correlation()
    corr_tissue_pred = tissue_sums.correlation()
    corr_tissue_dist = corr[:, n_labels + 1]
    return WindowStats(
        prediction=p0,
        corr_pred=corr[:, :n_labels].float(),
        corr_partial=partial_correlation(corr[:, :n_labels], corr_tissue_dist[:, None], corr_tissue_pred).float(),
        cov_pred=sums.covariance()[:, :n_labels].float(),
        corr_tissue_dist=corr_tissue_dist.float(),
        corr_tissue_pred=corr_tissue_pred.float(),
        corr_dist=corr[:, n_labels].float(),
        n_masks=sums.n.long(),
        mean_dist=(sums.sx / sums.n.clamp(min=1) + 1).float(),
        relax_sum=cells[:, 0],
        relax_sq_sum=cells[:, 1],
        rise_sum=cells[:, 3:],
        mask_sum=cells[:, 2],
        se_max=sums.standard_error()[:, : n_labels + 1].amax(dim=1).float(),
    )
