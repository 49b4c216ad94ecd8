"""A seeded breast phantom: outline, skin line, fatty/glandular texture, pectoral muscle.

Pixel values follow a 12-bit MONOCHROME2 scale (dense = bright): background near 60, fat about
1000, fully glandular tissue about 3100, pectoral muscle about 3200 (see the constants below).
Geometry is drawn for a left breast (chest wall on the left edge, as VinDr stores left images) and
mirrored for a right one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BITS_STORED = 12
MAX_VALUE = (1 << BITS_STORED) - 1
BACKGROUND = 60.0
FAT = 1000.0
DENSE = 3100.0
PECTORAL = 3200.0
ASPECT = 0.8  # width / height of the stored image (VinDr: 2800 / 3518 ≈ 0.8)


@dataclass
class BreastPhantom:
    """Float pixels (12-bit scale) plus the masks that lesion placement needs."""

    pixels: np.ndarray  # (H, W) float32
    breast: np.ndarray  # (H, W) bool, the whole breast including the pectoral muscle
    pectoral: np.ndarray  # (H, W) bool, empty on CC views
    lesion_zone: np.ndarray  # (H, W) bool, breast tissue away from skin, chest wall and muscle

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]


def image_shape(size: int) -> tuple[int, int]:
    """(rows, columns) of a synthetic image whose height is ``size``."""
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    return size, round(size * ASPECT / 2) * 2


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 3.0) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian field whose power spectrum falls as 1/f^beta."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amplitude = f ** (-beta / 2)
    amplitude[0, 0] = 0.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) * amplitude
    field = np.fft.irfft2(spectrum, s=shape).astype(np.float32)
    return (field - field.mean()) / (field.std() + 1e-12)


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    """Round and clip float pixels to the stored 12-bit range."""
    return np.clip(np.rint(pixels), 0, MAX_VALUE).astype(np.uint16)


def _outline(rng: np.random.Generator, shape: tuple[int, int], view: str) -> tuple[np.ndarray, tuple[float, float]]:
    """Normalised radius rho (< 1 inside the breast) of an egg-shaped outline around the chest wall;
    also the outline's centre row and depth (half-axis along x) in pixels."""
    h, w = shape
    cy = h * rng.uniform(0.45, 0.55)
    depth = w * rng.uniform(0.62, 0.86)
    if view == "MLO":  # runs off the top edge into the axilla, ends at the inframammary fold
        b_top, b_bottom = h * rng.uniform(0.8, 1.0), h * rng.uniform(0.38, 0.45)
    else:
        b_top, b_bottom = h * rng.uniform(0.36, 0.44), h * rng.uniform(0.36, 0.44)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    dy = (y - cy) / np.where(y < cy, b_top, b_bottom).astype(np.float32)
    dx = x / depth
    theta = np.arctan2(dy, dx)
    wobble = np.ones_like(theta)
    for k in range(2, 7):
        wobble += rng.uniform(-0.018, 0.018) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.sqrt(dx * dx + dy * dy) / wobble, (cy, depth)


def _radial_texture(rng: np.random.Generator, shape: tuple[int, int], nipple: tuple[float, float],
                    stretch: float) -> np.ndarray:
    """Power-law texture warped into polar coordinates around the nipple, so that its structures
    are elongated along the ducts (radially) and converge towards the nipple."""
    h, w = shape
    noise = power_law_noise(rng, shape, 3.0)
    y = np.arange(h, dtype=np.float32)[:, None] - nipple[1]
    x = nipple[0] - np.arange(w, dtype=np.float32)[None, :]
    radius = np.sqrt(x * x + y * y)
    angle = np.arctan2(y, x)
    map_x = (radius / stretch).astype(np.float32)
    map_y = np.broadcast_to(angle * (0.5 * nipple[0]) + h / 2, shape).astype(np.float32)
    warped = cv2.remap(noise, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return (warped - warped.mean()) / (warped.std() + 1e-12)


def _pectoral(rng: np.random.Generator, shape: tuple[int, int], soft: float) -> np.ndarray:
    """Weight in [0, 1] of the pectoral muscle: a slightly convex triangle in the top-left corner."""
    h, w = shape
    width, height = w * rng.uniform(0.25, 0.42), h * rng.uniform(0.38, 0.62)
    bulge = rng.uniform(0.75, 1.0)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    edge = width * np.clip(1 - y / height, 0, 1) ** bulge
    return np.clip((edge - x) / soft + 0.5, 0, 1).astype(np.float32)


def _strands(rng: np.random.Generator, shape: tuple[int, int], cy: float, depth: float) -> np.ndarray:
    """Thin curvilinear structures (ducts, Cooper's ligaments) running from the chest wall to the nipple."""
    h = shape[0]
    canvas = np.zeros(shape, np.uint8)
    scale = h / 1000
    n = int(40 * rng.uniform(0.6, 1.4))
    for _ in range(n):
        p = np.array([rng.uniform(0.0, 0.7) * depth, cy + rng.normal(0, 0.3) * h])
        target = np.array([depth, cy + rng.normal(0, 0.05) * h])
        heading = np.arctan2(*(target - p)[::-1]) + rng.normal(0, 0.35)
        step, points = rng.uniform(8, 16) * scale, [p.copy()]
        for _ in range(rng.integers(8, 30)):
            heading += rng.normal(0, 0.12)
            p = p + step * np.array([np.cos(heading), np.sin(heading)])
            points.append(p.copy())
        pts = np.round(np.array(points) * 16).astype(np.int32)  # 4 fractional bits
        thickness = max(1, round(scale * rng.uniform(0.6, 1.6)))
        cv2.polylines(canvas, [pts], False, int(rng.uniform(90, 255)), thickness, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(canvas.astype(np.float32) / 255, (0, 0), max(0.6, 0.8 * scale))


def synth_phantom(rng: np.random.Generator, size: int, view: str, laterality: str,
                  density: float | None = None) -> BreastPhantom:
    """A normal breast of height ``size`` (view "CC"/"MLO", laterality "L"/"R").

    ``density`` in [0, 1] sets the amount of glandular tissue (0 fatty ... 1 extremely dense);
    drawn at random when None.
    """
    if view not in ("CC", "MLO") or laterality not in ("L", "R"):
        raise ValueError(f"view must be CC/MLO and laterality L/R, got {view!r}, {laterality!r}")
    shape = image_shape(size)
    h, w = shape
    density = rng.uniform(0.1, 0.9) if density is None else float(density)
    rho, (cy, depth) = _outline(rng, shape, view)
    breast = rho < 1.0

    # glandular fraction: power-law texture on top of an envelope centred behind the nipple
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    gy = cy + (0.06 * h if view == "MLO" else 0.0)
    envelope = np.exp(-(((x - 0.4 * depth) / (0.5 * depth)) ** 2) - ((y - gy) / (0.28 * h)) ** 2)
    envelope *= np.clip(1 - rho**4, 0, 1)
    texture = 0.6 * power_law_noise(rng, shape, 3.0) + 0.8 * _radial_texture(rng, shape, (1.3 * depth, cy), 3.0)
    glandular = 1 / (1 + np.exp(-1.2 * (texture + 2.0 * envelope - 2.0 + 2.4 * density)))
    tissue = FAT + (DENSE - FAT) * glandular
    tissue += (DENSE - FAT) * 0.18 * _strands(rng, shape, cy, depth) * (1 - 0.5 * glandular)

    # compressed thickness falls to zero at the skin; the skin itself is a thin brighter line
    thickness = np.clip(np.sqrt(np.clip(1 - rho**2, 0, 1)) / 0.55, 0, 1) ** 0.6
    pixels = BACKGROUND + (tissue - BACKGROUND) * thickness
    inside = breast.astype(np.uint8)
    to_skin = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
    skin_width = max(1.0, 1.6 * h / 1000)
    pixels += 500.0 * np.exp(-((to_skin / skin_width) ** 2)) * breast

    pectoral = np.zeros(shape, np.float32)
    if view == "MLO":
        pectoral = _pectoral(rng, shape, soft=max(1.5, 3 * h / 1000)) * breast
        muscle = PECTORAL * rng.uniform(0.92, 1.05) + 250 * texture - 900 * (y / h)
        pixels = pixels * (1 - pectoral) + muscle * thickness * pectoral

    pixels = np.where(breast, pixels, BACKGROUND)
    pixels += rng.normal(0, 14, shape).astype(np.float32)
    margin = 0.04 * h
    zone = (to_skin > margin) & (x > margin) & (pectoral < 0.01)
    zone &= cv2.distanceTransform((pectoral < 0.01).astype(np.uint8), cv2.DIST_L2, 3) > margin
    phantom = BreastPhantom(pixels.astype(np.float32), breast, pectoral > 0.5, zone)
    return mirror(phantom) if laterality == "R" else phantom


def mirror(phantom: BreastPhantom) -> BreastPhantom:
    """The same phantom flipped left-right (a right breast)."""
    return BreastPhantom(*(np.ascontiguousarray(a[:, ::-1]) for a in
                           (phantom.pixels, phantom.breast, phantom.pectoral, phantom.lesion_zone)))


def synth_breast(rng: np.random.Generator, size: int, view: str, laterality: str,
                 density: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 pixels, bool breast mask) of a normal synthetic mammogram of height ``size``."""
    phantom = synth_phantom(rng, size, view, laterality, density)
    return to_uint16(phantom.pixels), phantom.breast
