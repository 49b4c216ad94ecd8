"""Pre-processing steps and the prepare() pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from correlax.io import Mammogram, read_image
from correlax.preprocess import (
    PreprocessSettings,
    breast_bbox,
    breast_on_right,
    clahe_fusion,
    prepare,
    resample,
    to_uint8,
    to_unit_float,
)


def blob_image(h: int = 120, w: int = 100, right: bool = False) -> np.ndarray:
    """A 12-bit 'breast': a bright half-disc against the left (or right) border, plus a small speck."""
    yy, xx = np.mgrid[:h, :w]
    cx = w - 1 if right else 0
    img = np.zeros((h, w), np.uint16)
    disc = (yy - 60) ** 2 + (xx - cx) ** 2 < 45**2
    img[disc] = 2000 + (yy[disc] * 7) % 1500
    img[5:8, 90 if not right else 5 : 93 if not right else 8] = 3000  # small bright label, not the breast
    return img


def test_unit_float_and_uint8():
    arr = np.array([[100, 200], [300, 4095]], np.uint16)
    unit = to_unit_float(arr)
    assert unit.dtype == np.float32 and unit.min() == 0 and unit.max() == 1
    u8 = to_uint8(arr)
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    assert not to_unit_float(np.full((3, 3), 7)).any()


def test_breast_bbox_picks_largest_component():
    x0, y0, x1, y1 = breast_bbox(blob_image())
    assert (x0, y0) == (0, 16) and (x1, y1) == (45, 105)  # the half-disc, not the speck at x≈90


def test_breast_bbox_of_constant_image_is_whole_image():
    assert breast_bbox(np.zeros((10, 20), np.uint8)) == (0, 0, 20, 10)


def test_clahe_fusion_keeps_zeros_and_original():
    gray = to_uint8(blob_image(256, 256))
    # Texture for CLAHE; OpenCV scales the clip limit by tile area / 256, so tiles need > 256 pixels.
    gray[40:200, :80] = np.random.default_rng(0).integers(1, 120, size=(160, 80))
    fused = clahe_fusion(gray)
    assert fused.shape == (*gray.shape, 3) and fused.dtype == np.uint8
    assert np.array_equal(fused[..., 0], gray)
    assert not fused[gray == 0].any()
    assert not np.array_equal(fused[..., 1], fused[..., 2])  # two different clip limits
    with pytest.raises(ValueError):
        clahe_fusion(blob_image())


def test_flip_puts_breast_left():
    m = Mammogram(blob_image(right=True), path="r.png")
    assert breast_on_right(m.pixels)
    p = prepare(m, PreprocessSettings(canonical_flip=True))
    assert p.flipped and not breast_on_right(p.image[..., 0]) and p.breast_box[0] == 0
    left = prepare(Mammogram(blob_image(), path="l.png"), PreprocessSettings(canonical_flip=True))
    assert not left.flipped


def test_resample_halves_size_at_double_spacing():
    m = Mammogram(blob_image(), path="a.dcm", spacing=(0.1, 0.1))
    p = prepare(m, PreprocessSettings(target_spacing=0.2))
    assert p.image.shape == (60, 50, 3) and p.scale == 0.5 and p.scale_y is None
    assert p.spacing == pytest.approx((0.2, 0.2))
    assert resample(np.zeros((10, 10), np.uint8), 2.0, 3.0).shape == (20, 30)


def test_resample_needs_known_spacing():
    with pytest.raises(ValueError, match="spacing unknown"):
        prepare(Mammogram(blob_image(), path="a.png"), PreprocessSettings(target_spacing=0.2))


@pytest.mark.parametrize("flip", [False, True])
def test_map_box_matches_pixels(flip):
    """A bright square in the stored image lands inside map_box of its box after resampling/flip."""
    img = np.zeros((200, 160), np.uint16)
    img[40:80, 100:140] = 4000
    strip = slice(140, 160) if flip else slice(0, 20)  # where most of the mass is: decides the flip
    img[:, strip] = 3000
    p = prepare(Mammogram(img, path="a.dcm", spacing=(0.1, 0.1)),
                PreprocessSettings(clahe_fusion=False, canonical_flip=True, target_spacing=0.2))
    assert p.flipped == flip
    x0, y0, x1, y1 = p.map_box((100, 40, 140, 80))
    bright = np.argwhere(p.image[..., 0] == 255)
    assert (bright[:, 1].min(), bright[:, 0].min()) == (x0, y0)
    assert (bright[:, 1].max() + 1, bright[:, 0].max() + 1) == (x1, y1)


def test_map_box_without_changes_is_identity():
    p = prepare(Mammogram(blob_image(), path="a.png"))
    assert p.map_box((1.5, 2, 30, 40.25)) == (1.5, 2.0, 30.0, 40.25) and p.scale == 1.0 and not p.flipped
    assert p.image.shape == (120, 100, 3)


def test_settings_round_trip():
    s = PreprocessSettings(clahe_fusion=False, canonical_flip=True, target_spacing=0.1)
    assert PreprocessSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="unknown"):
        PreprocessSettings.from_dict({"clahe": True})


def test_real_mias_breast_box(mias_root):
    m = read_image(mias_root / "images/mdb001.png")
    p = prepare(m)
    x0, y0, x1, y1 = p.breast_box
    area = (x1 - x0) * (y1 - y0) / (1024 * 1024)
    assert 0.1 < area < 0.9, p.breast_box
    # The box holds most of the image's bright tissue.
    gray = p.image[..., 0].astype(float)
    assert gray[y0:y1, x0:x1].sum() > 0.7 * gray.sum()
