"""Coarse-to-fine: the full-stride window grid run only where a coarse pass finds something.

The coarse grid (stride ``coarse_stride`` = f·S) is the subset of the full grid's windows at rows and columns
that are multiples of f, so a coarse window's statistics are exactly the full run's for that window (its masks
depend only on its index). A coarse window is *flagged* when a class probability or |correlation| comes within a
fraction of that class's largest over the coarse grid, or its largest standard error reaches a threshold (over the
finding classes: ``no_finding``, high wherever there is nothing, says nothing about where to look); every window of the full grid within
f - 1 steps of a flagged coarse window runs. The windows left out take the coarse prediction and correlations
interpolated bilinearly over the coarse grid, and no masks (the finer maps average over the windows that ran);
the smoothing kernel is the full grid's, W/S.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import torch
import torch.nn.functional as F

from correlax.explain.engine import WindowJob, WindowStats, window_statistics
from correlax.explain.settings import CorrelaxSettings
from correlax.labels import NO_FINDING

FLAT = 1e-3  # a class whose values on the coarse grid span less than this is flat: nothing to refine for it


def finding_columns(labels: tuple[str, ...]) -> list[int]:
    """The label columns the thresholds look at: all but ``no_finding`` (all when that is the only one)."""
    return [i for i, label in enumerate(labels) if label != NO_FINDING] or list(range(len(labels)))


def flagged(stats: WindowStats, settings: CorrelaxSettings, columns: list[int]) -> torch.Tensor:
    """(N,) bool: the windows to refine around. Per class in ``columns``, with lo..hi the range of its values on
    the coarse grid: prediction at least lo + ``refine_prediction`` (hi - lo), or |correlation| at least
    lo + ``refine_corr`` (hi - lo) (relative: a poorly calibrated network's probabilities may all sit near one
    value, and the Pointing Game looks for the peak); or the largest standard error at least ``refine_se``.
    A threshold that is None is off."""
    flag = torch.zeros(len(stats.prediction), dtype=torch.bool, device=stats.prediction.device)
    for values, fraction in ((stats.prediction[:, columns], settings.refine_prediction),
                             (stats.corr_pred[:, columns].abs(), settings.refine_corr)):  # fmt: skip
        if fraction is not None:
            low, spread = values.amin(dim=0), values.amax(dim=0) - values.amin(dim=0)
            varies = (spread > FLAT) | (fraction == 0)  # a flat class map has no peak to look for
            flag |= ((values - low >= fraction * spread) & varies).any(dim=1)
    if settings.refine_se is not None:
        flag |= stats.se_max >= settings.refine_se
    return flag


def refine_region(flags: torch.Tensor, factor: int) -> torch.Tensor:
    """(gh, gw) bool on the full grid, True at flagged coarse windows -> the windows within factor - 1 steps."""
    k = 2 * factor - 1
    return F.max_pool2d(flags[None, None].float(), k, stride=1, padding=factor - 1)[0, 0] > 0


def interpolate_coarse(values: torch.Tensor, factor: int) -> torch.Tensor:
    """(C, gh, gw) values valid at the coarse positions (rows, columns multiple of factor) -> (C, gh, gw),
    bilinear between coarse windows; beyond the last coarse row or column the edge value."""
    _, gh, gw = values.shape
    coarse = F.pad(values[None, :, ::factor, ::factor].float(), (0, 1, 0, 1), mode="replicate")
    _, _, ch, cw = coarse.shape
    fine = F.interpolate(coarse, size=((ch - 1) * factor + 1, (cw - 1) * factor + 1), mode="bilinear", align_corners=True)
    return fine[0, :, :gh, :gw]


INTERPOLATED = ("prediction", "corr_pred", "corr_partial", "cov_pred", "corr_dist")  # what a window that did not run takes


def _cat(parts: list[WindowStats]) -> WindowStats:
    return WindowStats(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(WindowStats)})


def _take(stats: WindowStats, rows: torch.Tensor) -> WindowStats:
    return WindowStats(**{f.name: getattr(stats, f.name)[rows] for f in fields(WindowStats)})


def _interpolated(like: WindowStats, values: torch.Tensor, n_labels: int) -> WindowStats:
    """Rows for windows that did not run: the :data:`INTERPOLATED` fields from ``values`` (N, 4L + 1), no masks."""
    rows = {f.name: getattr(like, f.name).new_zeros(len(values), *getattr(like, f.name).shape[1:]) for f in fields(WindowStats)}
    start = 0
    for name in INTERPOLATED:
        width = n_labels if getattr(like, name).ndim == 2 else 1
        rows[name] = values[:, start : start + width].reshape(rows[name].shape).to(rows[name].dtype)
        start += width
    return WindowStats(**rows)


def coarse_to_fine(
    job: WindowJob, window_ids: torch.Tensor, progress: Callable[[int, int], None] | None = None
) -> WindowStats:
    """:func:`~correlax.explain.engine.window_statistics` of ``window_ids`` (every row filled, in that order),
    running the full-stride windows only around flagged coarse windows (module docstring). ``progress(done, total)``:
    forward passes of both passes together, of at most n·(1 + K)."""
    runner, windows, settings = job.runner, job.windows, job.settings
    assert settings.coarse_stride is not None
    factor = settings.coarse_stride // settings.stride
    gh, gw = windows.shape[:2]
    ids = window_ids.to(runner.device)
    start, total = runner.passes, len(ids) * (1 + settings.n_masks)
    report = None if progress is None else (lambda *_: progress(runner.passes - start, total))
    on_coarse = (ids // gw % factor == 0) & (ids % gw % factor == 0)
    coarse = ids[on_coarse]
    if len(coarse) == 0:  # no coarse window to start from: the full grid
        return window_statistics(job, ids, progress)
    first = window_statistics(job, coarse, report)
    flags = torch.zeros(gh * gw, dtype=torch.bool, device=ids.device)
    flags[coarse[flagged(first, settings, finding_columns(tuple(runner.model.labels)))]] = True
    region = refine_region(flags.view(gh, gw), factor).flatten()
    fine = ids[region[ids] & ~on_coarse]
    rest = ids[~region[ids] & ~on_coarse]
    parts, order = [first], [coarse]
    if len(fine):
        parts.append(window_statistics(job, fine, report))
        order.append(fine)
    if len(rest):
        n_labels = first.prediction.shape[1]
        dense = torch.zeros(4 * n_labels + 1, gh * gw, device=ids.device)
        dense[:, coarse] = torch.cat([getattr(first, name).reshape(len(coarse), -1).T.float() for name in INTERPOLATED])
        values = interpolate_coarse(dense.view(-1, gh, gw), factor).flatten(1)
        parts.append(_interpolated(first, values[:, rest].T, n_labels))
        order.append(rest)
    row_of = torch.empty(gh * gw, dtype=torch.long, device=ids.device)
    run = torch.cat(order)
    row_of[run] = torch.arange(len(run), device=ids.device)
    return _take(_cat(parts), row_of[ids])
