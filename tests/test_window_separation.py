"""Issue 25's window-level measurement: which windows lie on a box, the within-film AUC, the band-centred value."""

import numpy as np
import pytest

from correlax.evaluation.window_separation import band_centred, separation_auc, window_centres, windows_on_boxes


def test_window_centres_and_the_windows_on_a_box_follow_the_grid():
    ys, xs = window_centres((10, 20, 80, 60), (3, 5), 16)
    assert ys.tolist() == [20, 36, 52] and xs.tolist() == [10, 26, 42, 58, 74]
    on = windows_on_boxes((10, 20, 80, 60), (3, 5), 16, [(25.0, 30.0, 45.0, 40.0)])  # holds the centre (26, 36) and (42, 36)
    assert np.argwhere(on).tolist() == [[1, 1], [1, 2]]


def test_separation_auc_is_the_mann_whitney_probability():
    values = np.array([[0.9, 0.1, 0.5], [0.5, 0.3, 7.0]])
    positive = np.array([[True, False, False], [True, False, False]])
    valid = np.array([[True, True, True], [True, True, False]])  # 7.0 is not a window that ran
    # positives 0.9, 0.5 against negatives 0.1, 0.5, 0.3: 0.9 beats all three; 0.5 beats two and ties one
    assert separation_auc(values, positive, valid) == pytest.approx((3 + 2.5) / 6)
    assert separation_auc(values, np.zeros_like(positive), valid) is None


def test_band_centred_removes_each_breast_band_s_mean_and_leaves_the_rest_at_zero():
    fraction = np.array([[0.2, 0.3, 1.0, 1.0], [0.05, 0.95, 1.0, 1.0]])
    valid = np.ones_like(fraction, bool)
    values = np.stack([np.array([[0.5, 0.3, 0.1, 0.3], [9.0, 0.4, 0.2, 0.2]]), np.ones_like(fraction)])
    out = band_centred(values, fraction, valid)
    np.testing.assert_allclose(out[0], [[0.1, -0.1, -0.1, 0.1], [0.0, 0.0, 0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(out[1], 0.0)  # a constant class is all baseline
