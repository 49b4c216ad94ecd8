"""Pooling of out-of-fold results (evaluation/crossval.py) on small hand-checked arrays."""

from __future__ import annotations

import numpy as np
import pytest

from correlax.evaluation.crossval import (
    FoldCrops,
    PooledCrops,
    cross_fold_thresholds,
    paired_against,
    paired_comparison,
    paired_crop_scores,
    patient_resamples,
    pool_classification,
    pool_pointing_game,
    sign_test,
)


def test_sign_test_exact_values():
    assert sign_test(8, 1) == pytest.approx(2 * (1 + 9) / 2**9)  # 2·P(X <= 1), X ~ Bin(9, 1/2)
    assert sign_test(1, 8) == sign_test(8, 1)
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 2**10)


def test_pool_classification_uses_each_folds_threshold():
    labels = ("mass",)
    fold_a = FoldCrops(np.array([[0.9], [0.4], [0.2]]), np.array([[True], [True], [False]]), {"mass": 0.3})
    fold_b = FoldCrops(np.array([[0.6], [0.1]]), np.array([[False], [True]]), {"mass": 0.7})
    pooled = pool_classification([fold_a, fold_b], labels)
    # decisions: fold a at 0.3 -> 1, 1, 0; fold b at 0.7 -> 0, 0: tp 2, fp 0, fn 1
    assert pooled["f1"]["mass"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    # at 0.5: 1, 0, 0, 1, 0: tp 1, fp 1, fn 2
    assert pooled["f1_at_0.5"]["mass"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    # pooled AUC: positives 0.9, 0.4, 0.1 against negatives 0.2, 0.6 -> 3 of 6 pairs ordered
    assert pooled["auc"]["mass"] == pytest.approx(3 / 6)
    assert pooled["support"]["mass"] == 3
    assert pool_classification([FoldCrops(np.array([[0.5]]), np.array([[False]]), {})], labels)["auc"]["mass"] is None
    assert "ci95" not in pooled  # no patients recorded: no interval


def test_thresholds_chosen_on_the_other_folds_and_scored_on_the_held_out_fold_only():
    labels = ("mass",)
    # fold a alone separates at 0.5 (positives 0.9, 0.8; negative 0.3); fold b at 0.15 (positive 0.2; negative 0.1)
    fold_a = FoldCrops(np.array([[0.9], [0.8], [0.3]]), np.array([[True], [True], [False]]), {"mass": 0.99})
    fold_b = FoldCrops(np.array([[0.2], [0.1]]), np.array([[True], [False]]), {"mass": 0.99})
    thresholds = cross_fold_thresholds([fold_a, fold_b], labels)
    # fold a's threshold comes from fold b's crops only: between b's positive 0.2 and its negative 0.1
    assert 0.1 < thresholds[0]["mass"] <= 0.2
    # fold b's from fold a's: between a's lowest positive 0.8 and its negative 0.3
    assert 0.3 < thresholds[1]["mass"] <= 0.8
    pooled = pool_classification([fold_a, fold_b], labels)
    assert pooled["cross_fold_thresholds"] == thresholds
    # fold a at ~0.15: 1, 1, 1 (tp 2, fp 1); fold b at ~0.55: 0, 0 (fn 1): precision 2/3, recall 2/3
    assert pooled["f1_at_cross_fold_threshold"]["mass"] == pytest.approx(2 / 3)
    assert pooled["f1"]["mass"] == 0.0  # the folds' own thresholds (0.99) call nothing


def _crops(rng: np.random.Generator, n_patients: int, signal: float) -> FoldCrops:
    """Four crops per patient, one label; ``signal`` separates the probabilities of positive crops."""
    patients = np.repeat([f"p{i}" for i in range(n_patients)], 4)
    targets = rng.random((len(patients), 1)) < 0.4
    probs = np.clip(0.5 + signal * (targets - 0.5) + rng.normal(0, 0.2, targets.shape), 0, 1)
    return FoldCrops(probs, targets, {"mass": 0.5}, patients)


def test_patient_resamples_draw_whole_patients_paired_across_runs():
    rng = np.random.default_rng(0)
    a = PooledCrops.of([_crops(rng, 6, 0.5)], ("mass",))
    b = PooledCrops.of([_crops(rng, 5, 0.5), _crops(rng, 3, 0.5)], ("mass",))  # p0..p4 and p0..p2 again
    rows_a, rows_b = patient_resamples([a, b], n_resamples=20, seed=1)
    for ra, rb in zip(rows_a, rows_b):
        drawn_a, drawn_b = a.patients[ra], b.patients[rb]
        assert set(drawn_a) <= {f"p{i}" for i in range(5)}  # p5 is not in run b: never drawn
        for p in set(drawn_a):  # every crop of a drawn patient, as many times as it was drawn, in both runs
            times = (drawn_a == p).sum() // (a.patients == p).sum()
            assert (drawn_a == p).sum() == times * (a.patients == p).sum()
            assert (drawn_b == p).sum() == times * (b.patients == p).sum()
    with pytest.raises(ValueError, match="patient ids"):
        patient_resamples([PooledCrops.of([FoldCrops(a.probs, a.targets, {})], ("mass",))], 5, 0)


def test_bootstrap_intervals_and_paired_differences():
    rng = np.random.default_rng(0)
    weak, strong = _crops(rng, 40, 0.1), _crops(rng, 40, 0.6)
    pooled = pool_classification([weak], ("mass",), n_resamples=300)
    lo, hi = pooled["ci95"]["auc"]["mass"]
    assert lo < pooled["auc"]["mass"] < hi and pooled["bootstrap"] == {"patients": 40, "resamples": 300}
    a, b = PooledCrops.of([weak], ("mass",)), PooledCrops.of([strong], ("mass",))
    better = paired_crop_scores(a, b, ("mass",), n_resamples=300)["mass"]["auc"]
    assert better["delta"] == pytest.approx(b.scores()[1][0] - a.scores()[1][0])
    assert better["delta"] > 0 and better["ci95"][0] > 0 and better["p"] < 0.01
    assert paired_crop_scores(b, a, ("mass",), n_resamples=300)["mass"]["auc"]["ci95"][1] < 0
    same = paired_crop_scores(a, a, ("mass",), n_resamples=50)["mass"]["auc"]
    assert same == {"delta": 0.0, "ci95": [0.0, 0.0], "p": 1.0}


def _records(method: str, hits: dict[tuple[str, str], bool]) -> list[dict]:
    return [{"image_id": i, "label": c, "method": method, "reference_hit": h, "standard_hit": not h}
            for (i, c), h in hits.items()]  # fmt: skip


def test_pointing_game_pooled_and_paired():
    keys = [(f"img{i}", "mass") for i in range(10)] + [("img0", "calcification"), ("img1", "calcification")]
    ours = dict(zip(keys, [True] * 9 + [False] + [True, False]))
    center = dict(zip(keys, [False] * 8 + [True, True] + [False, False]))
    records = _records("correlax-prediction", ours) + _records("center", center)
    pooled = pool_pointing_game(records, ("mass", "calcification"))
    ref = pooled["correlax-prediction"]["reference"]
    assert pooled["correlax-prediction"]["n_images"] == 10
    assert ref["per_class"]["mass"]["hits"] == 9 and ref["per_class"]["mass"]["n"] == 10
    assert ref["per_class"]["calcification"] == {"hits": 1, "n": 2, "acc": 0.5, "ci95": pytest.approx([0.0945, 0.9055], abs=1e-3)}
    assert ref["average"] == pytest.approx(10 / 10)  # total hits / images (an image with two classes counts twice)
    assert ref["class_mean"] == pytest.approx((0.9 + 0.5) / 2)
    assert pooled["center"]["standard"]["per_class"]["mass"]["hits"] == 8
    paired = paired_against(records)
    # ours hits where center misses on img0..img7 (mass) and img0 (calcification); center alone on img9
    assert paired["correlax-prediction"]["vs_center"] == {"wins": 9, "losses": 1, "ties": 2, "p": pytest.approx(sign_test(9, 1))}
    assert paired["correlax-prediction"]["vs_center"]["p"] < 0.05
    assert "vs_gradcam" not in paired["correlax-prediction"] and paired["center"] == {}
    standard = paired_comparison(
        {k: r for r in _records("a", ours) for k in [(r["image_id"], r["label"])]},
        {k: r for r in _records("b", center) for k in [(r["image_id"], r["label"])]},
        "standard",
    )
    assert (standard["wins"], standard["losses"]) == (1, 9)


def test_an_image_scored_in_two_folds_is_an_error():
    records = _records("center", {("img0", "mass"): True}) * 2
    with pytest.raises(ValueError, match="img0"):
        pool_pointing_game(records, ("mass",))
