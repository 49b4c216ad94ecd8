"""Lesions added to a synthetic breast: calcification clusters and masses, each with its box.

Sizes are fractions of the image height, matching VinDr-Mammo's box sizes relative to its
~3,500-pixel images (data-formats.md): masses 130-470 px, calcification clusters 70-680 px there.
Both functions are pure: they return a new pixel array and the box (xmin, ymin, xmax, ymax) in
pixel-edge coordinates (xmax = last column + 1), inside the ``where`` mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from correlax.geometry import AnnotationBox
from correlax.data.synthetic.anatomy import DENSE, FAT, MAX_VALUE

MASS_KINDS = ("round", "lobulated", "spiculated", "low_contrast")


def _pick_centre(rng: np.random.Generator, where: np.ndarray, clearance: float) -> tuple[int, int]:
    """(row, col) of a random pixel of ``where`` at least ``clearance`` pixels from its border."""
    room = cv2.distanceTransform(np.pad(where.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    candidates = np.flatnonzero(room > clearance)
    if candidates.size == 0:
        raise ValueError(f"no room for a lesion of radius {clearance:.0f} px inside the allowed region")
    r, c = divmod(int(rng.choice(candidates)), where.shape[1])
    return r, c


def _add_patch(pixels: np.ndarray, patch: np.ndarray, top: int, left: int) -> np.ndarray:
    """pixels + patch placed at (top, left), in float, back in the input's dtype (clipped if integer)."""
    out = pixels.astype(np.float32, copy=True)
    h, w = out.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    out[y0:y1, x0:x1] += patch[y0 - top:y1 - top, x0 - left:x1 - left]
    if np.issubdtype(pixels.dtype, np.integer):
        return np.clip(np.rint(out), 0, MAX_VALUE).astype(pixels.dtype)
    return out.astype(pixels.dtype)


def add_calcification_cluster(rng: np.random.Generator, pixels: np.ndarray, where: np.ndarray,
                              n_specks: int | None = None, radius: float | None = None,
                              contrast: float | None = None) -> tuple[np.ndarray, AnnotationBox]:
    """A cluster of ``n_specks`` (5-16) tiny bright specks (1-3 px across) in an ellipse of ``radius``
    pixels (1.2-4.5 % of the image height, at least 8 px), ``contrast`` in 12-bit units above the
    surrounding tissue (900-1500)."""
    h = pixels.shape[0]
    n_specks = int(rng.integers(5, 17)) if n_specks is None else n_specks
    radius = max(8.0, h * rng.uniform(0.012, 0.045)) if radius is None else float(radius)
    contrast = rng.uniform(900, 1500) if contrast is None else float(contrast)
    cy, cx = _pick_centre(rng, where, radius + 6)

    # speck centres: uniform in a rotated ellipse, at least 2 px apart
    angle, squash = rng.uniform(0, np.pi), rng.uniform(0.5, 1.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centres: list[np.ndarray] = []
    for _ in range(50 * n_specks):
        if len(centres) == n_specks:
            break
        r, t = radius * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        p = rot @ np.array([r * np.cos(t), squash * r * np.sin(t)])
        if all(np.hypot(*(p - q)) >= 2.0 for q in centres):
            centres.append(p)
    pts = np.array(centres)  # (n, 2) as (dx, dy) from the centre

    half = int(np.ceil(radius)) + 4
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    patch = np.zeros_like(yy)
    for dx, dy in pts:
        sigma = rng.uniform(0.5, 0.9)  # FWHM 1.2-2 px: specks 1-3 px across
        blob = np.exp(-((xx - dx) ** 2 + (yy - dy) ** 2) / (2 * sigma**2))
        patch = np.maximum(patch, contrast * rng.uniform(0.7, 1.0) * blob / blob.max())
    top, left = cy - half, cx - half
    margin = 2.0
    box = (left + half + pts[:, 0].min() - margin, top + half + pts[:, 1].min() - margin,
           left + half + pts[:, 0].max() + margin + 1, top + half + pts[:, 1].max() + margin + 1)
    return _add_patch(pixels, patch, top, left), _clip_box(box, pixels.shape)


def _mass_profile(rng: np.random.Generator, kind: str, radius: float) -> np.ndarray:
    """Relative density (peak 1) of a mass on a square patch centred on it."""
    spiculated = kind == "spiculated"
    reach = radius * (1.7 if spiculated else 1.5)
    half = int(np.ceil(reach)) + 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    aspect, tilt = rng.uniform(0.7, 1.0), rng.uniform(0, np.pi)
    u = xx * np.cos(tilt) + yy * np.sin(tilt)
    v = (-xx * np.sin(tilt) + yy * np.cos(tilt)) / aspect
    theta = np.arctan2(v, u)
    outline = np.full_like(theta, radius * (0.7 if spiculated else 1.0))
    if kind in ("lobulated", "spiculated", "low_contrast"):
        for k in range(2, 6):
            outline *= 1 + rng.uniform(0.04, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    dist = np.sqrt(u * u + v * v) / outline
    profile = np.clip(1 - dist**2, 0, 1) ** 0.35  # flat-topped, steep margin
    if spiculated:
        spicules = np.zeros_like(profile)
        core = 0.7 * radius
        for _ in range(int(rng.integers(10, 25))):
            a, length = rng.uniform(0, 2 * np.pi), radius * rng.uniform(0.9, 1.6)
            width = max(1.0, radius * rng.uniform(0.05, 0.11))
            d = np.array([np.cos(a), np.sin(a)])
            n = np.array([-d[1], d[0]])
            poly = np.array([core * 0.8 * d + width * n, core * 0.8 * d - width * n, length * d]) + half
            cv2.fillConvexPoly(spicules, np.round(poly * 16).astype(np.int32), 0.6, cv2.LINE_AA, shift=4)
        profile = np.maximum(profile, spicules)
    margin = radius * (0.15 if kind == "low_contrast" else 0.04) + 0.5
    return cv2.GaussianBlur(profile, (0, 0), margin)


def add_mass(rng: np.random.Generator, pixels: np.ndarray, where: np.ndarray, kind: str | None = None,
             radius: float | None = None, contrast: float | None = None) -> tuple[np.ndarray, AnnotationBox]:
    """A mass of ``kind`` (round, lobulated, spiculated, low_contrast; random when None) with
    ``radius`` pixels (1.8-6.5 % of the image height) and ``contrast`` in 12-bit units above the
    surrounding tissue (0.4-0.6 of the fat-to-dense range; about half that for low_contrast)."""
    if kind is None:
        kind = str(rng.choice(MASS_KINDS))
    if kind not in MASS_KINDS:
        raise ValueError(f"unknown mass kind {kind!r}; expected one of {MASS_KINDS}")
    h = pixels.shape[0]
    radius = max(6.0, h * rng.uniform(0.018, 0.065)) if radius is None else float(radius)
    if contrast is None:
        contrast = (DENSE - FAT) * (rng.uniform(0.22, 0.3) if kind == "low_contrast" else rng.uniform(0.4, 0.6))
    profile = _mass_profile(rng, kind, radius)
    half = profile.shape[0] // 2
    rows, cols = np.nonzero(profile > 0.1)
    extent = float(np.max(np.hypot(rows - half, cols - half))) + 1
    cy, cx = _pick_centre(rng, where, extent)
    top, left = cy - half, cx - half
    box = (left + cols.min(), top + rows.min(), left + cols.max() + 1, top + rows.max() + 1)
    return _add_patch(pixels, contrast * profile, top, left), _clip_box(box, pixels.shape)


def _clip_box(box: tuple[float, ...], shape: tuple[int, ...]) -> AnnotationBox:
    h, w = shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    return (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))
