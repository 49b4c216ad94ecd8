"""Pooling of out-of-fold results (evaluation/crossval.py) on small hand-checked arrays."""

from __future__ import annotations

import numpy as np
import pytest

from correlax.evaluation.crossval import (
    paired_against,
    paired_comparison,
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
    fold_a = (np.array([[0.9], [0.4], [0.2]]), np.array([[True], [True], [False]]), {"mass": 0.3})
    fold_b = (np.array([[0.6], [0.1]]), np.array([[False], [True]]), {"mass": 0.7})
    pooled = pool_classification([fold_a, fold_b], labels)
    # decisions: fold a at 0.3 -> 1, 1, 0; fold b at 0.7 -> 0, 0: tp 2, fp 0, fn 1
    assert pooled["f1"]["mass"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    # at 0.5: 1, 0, 0, 1, 0: tp 1, fp 1, fn 2
    assert pooled["f1_at_0.5"]["mass"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    # pooled AUC: positives 0.9, 0.4, 0.1 against negatives 0.2, 0.6 -> 3 of 6 pairs ordered
    assert pooled["auc"]["mass"] == pytest.approx(3 / 6)
    assert pooled["support"]["mass"] == 3
    assert pool_classification([(np.array([[0.5]]), np.array([[False]]), {})], labels)["auc"]["mass"] is None


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
