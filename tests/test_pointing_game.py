import math
import warnings

import numpy as np
import pytest

from correlax.evaluation.pointing_game import (
    MultiMethodScorer,
    PointingGameScorer,
    default_threshold,
    point_reference,
    point_standard,
    wilson_interval,
)

LABELS = ("no_finding", "mass", "calcification")


def _tolerance_mask(shape, boxes, tolerance):
    """Ground-truth pixels of integer boxes dilated by an exact Euclidean distance (independent path)."""
    from scipy.ndimage import distance_transform_edt

    mask = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return distance_transform_edt(~mask) <= tolerance


def test_standard_protocol_matches_quantus_pointing_game():
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(0)
    h, w, n = 48, 64, 40
    maps, masks, ours = [], [], []
    for _ in range(n):
        boxes = []
        for _ in range(rng.integers(1, 4)):
            x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
            boxes.append((x0, y0, x0 + int(rng.integers(0, 8)), y0 + int(rng.integers(0, 8))))
        heat = rng.random((h, w))
        maps.append(heat)
        masks.append(_tolerance_mask((h, w), boxes, 15.0))
        ours.append(point_standard(heat, boxes, tolerance=15.0).hit)
    a = np.stack(maps)[:, None].astype(np.float32)
    s = np.stack(masks)[:, None].astype(np.float32)
    x = np.zeros((n, 1, h, w), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = quantus.PointingGame(disable_warnings=True, display_progressbar=False)
        theirs = metric(model=None, x_batch=x, y_batch=np.zeros(n, int), a_batch=a, s_batch=s)
    assert [bool(t) for t in theirs] == ours
    assert 0 < sum(ours) < n  # the comparison exercised both outcomes


def test_standard_tolerance_in_mm():
    heat = np.zeros((50, 50))
    heat[10, 30] = 1.0
    box = [(10, 10, 20, 20)]  # point is 10 px right of the box
    assert point_standard(heat, box, tolerance=15.0).hit
    assert not point_standard(heat, box, tolerance=1.5, spacing=(0.1, 0.2)).hit  # 2 mm away
    assert point_standard(heat, box, tolerance=2.0, spacing=(0.1, 0.2)).hit
    scorer = PointingGameScorer(LABELS, tolerance_px=None, tolerance_mm=2.0)
    with pytest.raises(ValueError, match="spacing"):
        scorer.add(np.stack([heat] * 3), {"mass": box})
    scorer.add(np.stack([heat] * 3), {"mass": box}, spacing=(0.1, 0.2))
    res = scorer.result()["standard"]
    assert res["per_class"]["mass"]["hits"] == 1 and res["tolerance_mm"] == 2.0


def test_reference_point_on_enlarged_border_is_a_hit():
    heat = np.zeros((200, 200))
    box = [(50, 60, 80, 90)]
    heat[60, 80 + 32] = 1.0  # exactly S px right of the box
    assert point_reference(heat, box, margin_px=32).hit
    heat[:] = 0
    heat[60, 80 + 33] = 1.0
    assert not point_reference(heat, box, margin_px=32).hit


def test_reference_enlargement_is_clipped_to_the_crop_and_argmax_stays_in_it():
    heat = np.zeros((100, 100))
    heat[5, 5] = 2.0  # outside the crop: ignored by the reference protocol
    heat[40, 40] = 1.0
    p = point_reference(heat, [(45, 45, 60, 60)], crop=(30, 30, 90, 90), margin_px=10)
    assert (p.x, p.y, p.value, p.hit) == (40, 40, 1.0, True)
    # the standard protocol looks at the whole map
    assert (point_standard(heat, [(45, 45, 60, 60)]).x, point_standard(heat, [(45, 45, 60, 60)]).y) == (5, 5)


def test_reference_threshold_is_strict_and_optional():
    heat = np.zeros((64, 64))
    heat[20, 20] = 0.25
    box = [(15, 15, 25, 25)]
    assert not point_reference(heat, box, threshold=0.25).hit
    assert point_reference(heat, box, threshold=0.1).hit
    assert point_reference(heat, box, threshold=None).hit


def test_two_boxes_of_one_class_and_average_vs_class_mean():
    scorer = PointingGameScorer(LABELS, threshold=0.1, margin_px=0)
    h = w = 100

    def maps_with_peak(mass_xy, calc_xy):
        m = np.zeros((3, h, w))
        m[1, mass_xy[1], mass_xy[0]] = 1.0
        m[2, calc_xy[1], calc_xy[0]] = 1.0
        return m

    two_masses = {"mass": [(10, 10, 20, 20), (70, 70, 80, 80)]}
    scorer.add(maps_with_peak((75, 75), (0, 0)), two_masses)  # mass hit on the second box
    scorer.add(maps_with_peak((50, 50), (0, 0)), two_masses)  # mass miss
    # mass hit + calcification hit on the same image
    scorer.add(maps_with_peak((15, 15), (40, 40)), {"mass": [(10, 10, 20, 20)], "calcification": [(35, 35, 45, 45)]})
    scorer.add(maps_with_peak((15, 15), (0, 0)), {"no_finding": [], "calcification": [(35, 35, 45, 45)]})  # miss
    scorer.add(maps_with_peak((15, 15), (0, 0)), {"no_finding": []})  # not counted
    res = scorer.result()
    ref = res["reference"]
    assert res["n_images"] == 4
    assert ref["per_class"]["mass"]["hits"] == 2 and ref["per_class"]["mass"]["n"] == 3
    assert ref["per_class"]["calcification"]["hits"] == 1 and ref["per_class"]["calcification"]["n"] == 2
    assert "no_finding" not in ref["per_class"]
    assert ref["average"] == pytest.approx(3 / 4)  # total hits / images
    assert ref["class_mean"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert ref["threshold"] == 0.1
    assert res["standard"]["class_mean"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_average_can_exceed_one():
    scorer = PointingGameScorer(LABELS, threshold=None)
    m = np.zeros((3, 50, 50))
    m[1, 10, 10] = m[2, 10, 10] = 1
    scorer.add(m, {"mass": [(5, 5, 15, 15)], "calcification": [(5, 5, 15, 15)]})
    assert scorer.result()["reference"]["average"] == 2.0


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.7225, abs=1e-4)
    # the paper's Mass count: 114 hits of 219 images
    lo, hi = wilson_interval(114, 219)
    assert lo < 114 / 219 < hi and math.isclose(hi - lo, 0.1305, abs_tol=2e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_multi_method_thresholds_and_bad_shapes():
    board = MultiMethodScorer(LABELS)
    m = np.zeros((3, 40, 40))
    m[1, 5, 5] = 0.2
    out = board.add({"correlax-prediction": m, "correlax-correlation": m, "gradcam": m}, {"mass": [(0, 0, 10, 10)]})
    assert not out["correlax-prediction"]["mass"]["reference"].hit  # 0.2 <= 0.25
    assert out["correlax-correlation"]["mass"]["reference"].hit  # 0.2 > 0.1
    assert out["gradcam"]["mass"]["reference"].hit  # no threshold
    res = board.result()
    assert res["gradcam"]["reference"]["threshold"] is None
    assert default_threshold("correlax-prediction") == 0.25
    with pytest.raises(ValueError, match="shape"):
        board.add({"gradcam": m[:2]}, {"mass": [(0, 0, 10, 10)]})
