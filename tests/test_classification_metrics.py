"""Pure crop-level metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from correlax.evaluation.classification import (
    best_f1_threshold,
    binary_counts,
    classification_report,
    format_report,
    pair_confusion,
    precision_recall_f1,
    roc_auc,
)


def test_counts_and_f1():
    t = np.array([1, 1, 1, 0, 0, 0], bool)
    p = np.array([1, 1, 0, 1, 0, 0], bool)
    assert binary_counts(t, p) == (2, 1, 1, 2)
    precision, recall, f1 = precision_recall_f1(t, p)
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(2 / 3) and f1 == pytest.approx(2 / 3)
    assert precision_recall_f1(t, np.zeros(6, bool)) == (0.0, 0.0, 0.0)


def test_roc_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    t = rng.random(200) < 0.3
    s = np.round(rng.random(200) + 0.3 * t, 1)  # many ties
    pos, neg = s[t], s[~t]
    pairwise = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert roc_auc(t, s) == pytest.approx(pairwise)
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_best_threshold_maximises_f1():
    t = np.array([0, 0, 1, 0, 1, 1], bool)
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    thr = best_f1_threshold(t, s)
    best = max(precision_recall_f1(t, s >= c)[2] for c in s)
    assert precision_recall_f1(t, s >= thr)[2] == pytest.approx(best)
    assert thr not in s
    assert best_f1_threshold(np.zeros(3, bool), s[:3]) == 0.5


def test_pair_confusion_and_report():
    labels = ("no_finding", "mass", "calcification")
    t = np.array([[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0]], bool)
    prob = np.array([[0, 0.9, 0.1], [0, 0.2, 0.7], [0, 0.6, 0.8], [0, 0.9, 0.9], [0.9, 0, 0]])
    table = pair_confusion(t, prob >= 0.5, 2, 1)
    assert table == {"a": {"a": 0, "b": 0, "both": 1, "neither": 0}, "b": {"a": 1, "b": 1, "both": 0, "neither": 0}}
    report = classification_report(t, prob, labels, thresholds={"mass": 0.1})
    assert report["crops"] == 5
    assert report["labels"]["mass"]["support"] == 3
    assert report["labels"]["mass"]["at_chosen"]["recall"] == 1.0
    assert "at_chosen" not in report["labels"]["calcification"]
    assert report["calcification_vs_mass"]["mass"] == {"calcification": 1, "mass": 1, "both": 0, "neither": 0}
    text = format_report(report)
    assert "calcification" in text and "F1@0.5" in text
