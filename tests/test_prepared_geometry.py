"""The inverse of pre-processing: prepared-grid points and maps back onto the stored pixel grid."""

import numpy as np
import pytest

from correlax.io.image import Mammogram
from correlax.preprocess import PreparedGeometry, PreprocessSettings, prepare


def _right_breast(h: int = 90, w: int = 60) -> np.ndarray:
    """Bright tissue against the right edge, so that the canonical flip applies."""
    yy, xx = np.mgrid[:h, :w]
    return np.where(((xx - w) / (0.8 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2 < 1, 3000, 0).astype(np.uint16)


@pytest.mark.parametrize("flip", [False, True])
def test_peak_of_a_map_maps_back_to_the_stored_pixel(flip):
    pixels = _right_breast()
    mammogram = Mammogram(pixels=pixels, path=None, spacing=(0.1, 0.1))
    settings = PreprocessSettings(canonical_flip=flip, target_spacing=0.25)
    prepared = prepare(mammogram, settings)
    geometry = prepared.geometry
    assert geometry.stored_shape == pixels.shape and geometry.flipped == flip
    assert geometry.prepared_shape == prepared.image.shape[:2] == (36, 24)
    # a stored pixel marked in the source lands, through prepare and back, on itself (±1 px)
    stored = (40, 50)  # (x, y) inside the breast
    marked = pixels.copy()
    marked[stored[1] - 2 : stored[1] + 3, stored[0] - 2 : stored[0] + 3] = 4095
    image = prepare(Mammogram(pixels=marked, path=None, spacing=(0.1, 0.1)), settings).image[..., 0]
    y, x = np.unravel_index(np.argmax(image), image.shape)
    back = geometry.points_to_stored([[x, y]])[0]
    assert np.abs(back - stored).max() <= 2.0  # the 5-px mark shrinks to 2 prepared px: ±1 prepared px
    # the map's own peak lands on the stored pixel its point maps to
    bump = np.zeros(geometry.prepared_shape, np.float32)
    bump[y, x] = 1
    on_stored = geometry.map_to_stored(bump)
    assert on_stored.shape == pixels.shape
    sy, sx = np.unravel_index(np.argmax(on_stored), on_stored.shape)
    assert abs(sx - back[0]) <= 1 and abs(sy - back[1]) <= 1


def test_crop_origin_and_roundtrip_of_boxes():
    geometry = PreparedGeometry(stored_shape=(100, 80), prepared_shape=(50, 40), flipped=True)
    assert PreparedGeometry.from_dict(geometry.to_dict()) == geometry
    box = geometry.box_to_prepared((10, 20, 30, 60))
    assert box == (25.0, 10.0, 35.0, 30.0)
    crop = np.zeros((10, 10), np.float32)
    crop[4, 6] = 1  # prepared (x, y) = (5 + 6, 7 + 4)
    on_stored = geometry.map_to_stored(crop, origin=(5, 7))
    y, x = np.unravel_index(np.argmax(on_stored), on_stored.shape)
    expected = geometry.points_to_stored([[6, 4]], origin=(5, 7))[0]
    assert abs(x - expected[0]) <= 1 and abs(y - expected[1]) <= 1
    assert expected[0] == pytest.approx(2 * (40 - 11.5) - 0.5) and expected[1] == pytest.approx(2 * 11.5 - 0.5)
    with pytest.raises(ValueError, match="does not fit"):
        geometry.map_to_stored(crop, origin=(35, 0))
