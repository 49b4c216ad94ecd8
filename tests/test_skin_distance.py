"""Distances to the skin line (correlax.evaluation.skin), on shapes whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from correlax.evaluation.skin import distance_to_skin_mm, peak_of, skin_distance_map, tissue_of


def test_distance_inside_a_disc_is_radius_minus_distance_from_centre():
    yy, xx = np.mgrid[:201, :201]
    disc = (xx - 100) ** 2 + (yy - 100) ** 2 <= 80**2
    d = skin_distance_map(disc)
    assert distance_to_skin_mm(d, 100, 100, 0.2) == pytest.approx(81 * 0.2, abs=0.3)
    assert distance_to_skin_mm(d, 150, 100, 0.2) == pytest.approx(31 * 0.2, abs=0.3)
    assert distance_to_skin_mm(d, 5, 5, 0.2) == 0.0  # outside the breast


def test_the_image_border_counts_as_an_edge_and_tissue_is_a_fraction_of_the_maximum():
    grey = np.zeros((50, 60), np.uint8)
    grey[:, :40] = 200
    grey[:, 40:] = 15  # below 10 % of 200: background
    tissue = tissue_of(grey)
    assert tissue[:, :40].all() and not tissue[:, 40:].any()
    d = skin_distance_map(tissue)
    assert d[25, 0] == pytest.approx(1, abs=0.01)  # one pixel from the border
    assert d[25, 30] == pytest.approx(10, abs=0.01)  # ten from the breast's edge


def test_peak_is_the_pixel_centre_of_the_maximum():
    m = np.zeros((10, 20))
    m[3, 7] = 1
    assert peak_of(m) == (7.5, 3.5)


def test_distance_summary_counts_the_points_within_5_mm():
    from correlax.evaluation.skin import distance_summary

    s = distance_summary([1.0, 4.9, 5.0, 10.0, 30.0])
    assert s["n"] == 5 and s["median"] == 5.0 and s["within_5mm"] == 2 and s["q25"] == 4.9 and s["q75"] == 10.0
    assert distance_summary([]) == {"n": 0}
