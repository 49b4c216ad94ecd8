"""``benchmarks/flip_points.py``: where a Pointing Game flip lies relative to the breast and the skipped windows."""

from __future__ import annotations

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from correlax.explain.windows import WindowGrid


@pytest.fixture(scope="module")
def flips():
    return load_benchmark("flip_points")


def test_covering_windows_and_their_breast_fraction(flips):
    tissue = np.zeros((64, 64), bool)
    tissue[:, :32] = True  # breast on the left half
    grid = WindowGrid((0, 0, 64, 64), window=16, stride=8)  # windows centred every 8 px from (0, 0)
    inside = flips.covering_fractions(tissue, grid, x=4, y=20)
    # centres within 8 px: x in {0, 8}, y in {16, 24}; the windows at x = 0 are half zero padding
    np.testing.assert_allclose(np.sort(inside), [0.5, 0.5, 1.0, 1.0])
    outside = flips.covering_fractions(tissue, grid, x=60, y=20)  # centres x = 56 only: all background
    assert outside.size == 2 and np.all(outside == 0)


def test_describe_flips_marks_points_outside_the_breast(flips):
    tissue = np.zeros((64, 64), bool)
    tissue[:, :32] = True
    point = {"x": 60, "y": 20, "value": 0.4, "hit": False}
    report = {
        "config": {"window": 16, "stride": 8, "min_tissue": 0.1},
        "modes": {"exact-fp32": {"stride": 8}, "tissue": {"stride": 8}},
        "images": [{"id": "a", "breast_box": [0, 0, 64, 64], "modes": {
            "exact-fp32": {},
            "tissue": {"agreement": {"pointing_game_flips": [
                {"map": "prediction", "label": "mass", "exact": point, "mode": {**point, "x": 10, "hit": True}}]}},
        }}],
    }  # fmt: skip
    (row,) = flips.describe_flips(report, {"a": {"tissue": tissue}})
    assert row["faster_mode"] == "tissue"
    assert row["exact"]["in_breast"] is False and row["exact"]["windows_below_0.1"] == row["exact"]["windows"] == 2
    assert row["mode"]["in_breast"] is True and row["mode"]["windows_below_0.1"] == 0
