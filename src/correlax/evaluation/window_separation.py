"""How well a window's own value tells the windows on a lesion from the rest of its film (issue 25).

A whole-image map can only point at a lesion if the per-window values it is smoothed from are higher on the
lesion than elsewhere on the same film. These pure functions measure that on the window grid of
:mod:`correlax.explain.windows` (a window's centre sits at ``breast_box[:2] + (j, i) * stride``): which windows
lie on a box, the within-film AUC of a window value for them against the others, and a value re-centred on
the windows of the same breast fraction (the skin line's baseline removed, a candidate lever).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from correlax.geometry import AnnotationBox, PixelBox

# bands of a window's breast fraction: straddling the skin line, mostly breast, nearly all breast, inside
BREAST_BANDS = (0.1, 0.5, 0.9, 0.99, 1.01)


def window_centres(breast_box: PixelBox, shape: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(y (gh,), x (gw,)) image-pixel centres of the window grid's rows and columns."""
    x0, y0 = breast_box[0], breast_box[1]
    return y0 + stride * np.arange(shape[0], dtype=float), x0 + stride * np.arange(shape[1], dtype=float)


def windows_on_boxes(
    breast_box: PixelBox, shape: tuple[int, int], stride: int, boxes: Sequence[AnnotationBox]
) -> np.ndarray:
    """(gh, gw) bool: windows whose centre lies inside one of ``boxes`` (image pixels, end exclusive)."""
    ys, xs = window_centres(breast_box, shape, stride)
    y, x = np.meshgrid(ys, xs, indexing="ij")
    on = np.zeros(shape, bool)
    for bx0, by0, bx1, by1 in boxes:
        on |= (x >= bx0) & (x < bx1) & (y >= by0) & (y < by1)
    return on


def separation_auc(values: np.ndarray, positive: np.ndarray, valid: np.ndarray) -> float | None:
    """The probability that a valid positive window's value exceeds a valid negative one's (ties count half):
    the Mann-Whitney AUC. None when either group is empty."""
    v, pos = values[valid], positive[valid]
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(v)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def band_centred(
    values: np.ndarray, fraction: np.ndarray, valid: np.ndarray, bands: Sequence[float] = BREAST_BANDS
) -> np.ndarray:
    """(C, gh, gw) ``values`` less the mean of the film's valid windows in the same band of breast ``fraction``
    ((gh, gw); band edges ``bands``, lower bound inclusive); 0 for windows that are not valid or in no band."""
    out = np.zeros_like(values, dtype=np.float32)
    for lo, hi in zip(bands[:-1], bands[1:]):
        sel = valid & (fraction >= lo) & (fraction < hi)
        if sel.any():
            out[:, sel] = values[:, sel] - values[:, sel].mean(axis=1, keepdims=True)
    return out
