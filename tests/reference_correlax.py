"""A plain CorRELAX, one window at a time, written from docs/method.md §4–§6 for the tests.

Deliberately simple and independent of ``correlax.explain``'s code paths: numpy slicing for the
windows, OpenCV for the upsampling and resizing, SciPy for the convolution, per-mask arrays kept
and correlated directly, per-pixel finer maps at full resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
from scipy.signal import convolve2d




def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean()
    y = y - y.mean()
    vx, vy = (x * x).mean(), (y * y).mean()
    if vx == 0 or vy == 0:  # the reference turns the NaN of a constant series into 0
        return 0.0
    return float((x * y).mean() / math.sqrt(vx * vy))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of vector a with each row of b."""
    return (b @ a) / (np.linalg.norm(a) * np.linalg.norm(b, axis=1))


def upsample_mask(cells: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(cells.astype(np.float64), (size, size), interpolation=cv2.INTER_LINEAR)


def kernel(window: int, stride: int) -> np.ndarray:
    t = (window // 2) // stride
    k = np.zeros((2 * t + 1, 2 * t + 1))
    for a in range(-t, t + 1):
        for b in range(-t, t + 1):
            inter = (window - abs(a * stride)) * (window - abs(b * stride))
            k[a + t, b + t] = inter / (2 * window * window - inter)
    return k / k.sum()


def smooth(values: np.ndarray, window: int, stride: int, crop_hw: tuple[int, int]) -> np.ndarray:
    hc, wc = crop_hw
    conv = convolve2d(values, kernel(window, stride), mode="full")
    big = cv2.resize(conv, (wc + window, hc + window), interpolation=cv2.INTER_LINEAR)
    half = window // 2
    return big[half : half + hc, half : half + wc]


def run(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return torch.sigmoid(out.logits.double()).numpy(), out.features.double().numpy()


def fill_image(win: np.ndarray, fill: str, window: int) -> np.ndarray | float:
    """What hidden pixels of the (C, W, W) window show."""
    if fill == "black":
        return 0.0
    if fill == "mean":
        return win.mean(axis=(1, 2), keepdims=True)
    sigma = window / 16
    size = 2 * math.ceil(3 * sigma) + 1
    return np.stack([cv2.GaussianBlur(c, (size, size), sigma, borderType=cv2.BORDER_REFLECT_101) for c in win])


def reference_correlax(
    model,
    image: torch.Tensor,
    box: tuple[int, int, int, int],
    window: int,
    stride: int,
    masks_for: Callable[[int], np.ndarray],
    masks_per_forward: int = 32,
    fill: str = "black",
    tissue: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Statistics and maps of §4–§6. ``masks_for(window_index)`` gives that window's (K, g, g) cell grids,
    window_index = i * gw + j on the (gh, gw) grid. Hidden pixels show ``fill``: black, the window's
    channel means, or the window blurred with σ = W/16 (OpenCV, reflected border). With ``tissue`` (H, W) bool, also the
    partial correlation of d and P_c given the share t of the window's tissue pixels each mask hides, computed the
    textbook way: d and P_c regressed on t by least squares, then the Pearson correlation of the residuals."""
    x0, y0, x1, y1 = box
    img = image.double().numpy()
    crop = img[:, y0:y1, x0:x1]
    hc, wc = crop.shape[1:]
    half = window // 2
    padded = np.pad(crop, ((0, 0), (half, half), (half, half)))
    gh, gw = math.ceil(hc / stride), math.ceil(wc / stride)
    n_labels = len(model.labels)
    pred = np.zeros((n_labels, gh, gw))
    corr_pred = np.zeros((n_labels, gh, gw))
    cov_pred = np.zeros((n_labels, gh, gw))
    corr_dist = np.zeros((gh, gw))
    corr_partial = np.zeros((n_labels, gh, gw))
    tissue_padded = None if tissue is None else np.pad(tissue[y0:y1, x0:x1].astype(float), half)
    relax_total = np.zeros(padded.shape[1:])
    centred_total = np.zeros(padded.shape[1:])
    uncertainty_total = np.zeros(padded.shape[1:])
    rise_total = np.zeros((n_labels,) + padded.shape[1:])
    count = np.zeros(padded.shape[1:])
    for i in range(gh):
        for j in range(gw):
            top, left = i * stride, j * stride
            win = padded[:, top : top + window, left : left + window]
            p, z = run(model, win[None])
            p, z = p[0], z[0]
            masks = np.stack([upsample_mask(c, window) for c in masks_for(i * gw + j)])
            probs, feats = [], []
            for k in range(0, len(masks), masks_per_forward):
                m = masks[k : k + masks_per_forward, None]
                pk, zk = run(model, win[None] * m + fill_image(win, fill, window) * (1 - m))
                probs.append(pk)
                feats.append(zk)
            probs, feats = np.concatenate(probs), np.concatenate(feats)
            d = cosine(z, feats)
            q = cosine(p, probs)
            pred[:, i, j] = p
            corr_dist[i, j] = pearson(d, q)
            for c in range(n_labels):
                corr_pred[c, i, j] = pearson(d, probs[:, c])
                cov_pred[c, i, j] = np.mean((d - d.mean()) * (probs[:, c] - probs[:, c].mean()))
            if tissue_padded is not None:
                tw = tissue_padded[top : top + window, left : left + window]
                t = 1 - np.einsum("yx,kyx->k", tw, masks) / tw.sum() if tw.sum() > 0 else np.zeros(len(masks))
                design = np.stack([np.ones_like(t), t], axis=1)

                def residual(v: np.ndarray) -> np.ndarray:
                    return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]

                for c in range(n_labels):
                    corr_partial[c, i, j] = pearson(residual(d), residual(probs[:, c]))
            msum = masks.sum(0)
            safe = np.where(msum > 0, msum, 1)
            relax = np.where(msum > 0, np.tensordot(d, masks, 1) / safe, 0)
            relax_total[top : top + window, left : left + window] += relax
            centred_total[top : top + window, left : left + window] += np.where(
                msum > 0, np.tensordot(d - d.mean(), masks, 1) / safe, 0
            )
            spread = np.einsum("k,kyx->yx", d * d, masks) / safe - relax**2
            uncertainty_total[top : top + window, left : left + window] += np.where(msum > 0, spread, 0)
            rise_total[:, top : top + window, left : left + window] += np.where(
                msum > 0, np.tensordot(probs.T, masks, 1) / safe, 0
            )
            count[top : top + window, left : left + window] += 1

    def to_image(crop_map: np.ndarray) -> np.ndarray:
        out = np.zeros(img.shape[1:])
        out[y0:y1, x0:x1] = crop_map
        return out

    def finer(total: np.ndarray) -> np.ndarray:
        return to_image((total / np.maximum(count, 1))[half : half + hc, half : half + wc])

    return {
        "window_prediction": pred,
        "window_corr_pred": corr_pred,
        "window_corr_dist": corr_dist,
        "prediction": np.stack([to_image(smooth(pred[c], window, stride, (hc, wc))) for c in range(n_labels)]),
        "corr_pred": np.stack([to_image(smooth(corr_pred[c], window, stride, (hc, wc))) for c in range(n_labels)]),
        "corr_dist": to_image(smooth(corr_dist, window, stride, (hc, wc))),
        "window_corr_partial": corr_partial,
        "window_cov_pred": cov_pred,
        "cov_pred": np.stack([to_image(smooth(cov_pred[c], window, stride, (hc, wc))) for c in range(n_labels)]),
        "corr_partial": np.stack([to_image(smooth(corr_partial[c], window, stride, (hc, wc))) for c in range(n_labels)]),
        "relax": finer(relax_total),
        "relax_centred": finer(centred_total),
        "relax_uncertainty": finer(uncertainty_total),
        "rise": np.stack([finer(rise_total[c]) for c in range(n_labels)]),
    }
