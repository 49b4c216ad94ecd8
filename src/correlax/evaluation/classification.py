"""Crop-level classification metrics: pure functions on (N, L) arrays of 0/1 targets and probabilities."""

from __future__ import annotations

import numpy as np


def binary_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of two boolean vectors."""
    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    return int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum()), int((~t & ~p).sum())


def precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of one label; 0 where undefined (no predicted or no true positives)."""
    tp, fp, fn, _ = binary_counts(y_true, y_pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve as the Mann–Whitney statistic (ties count one half); NaN with one class only."""
    t = np.asarray(y_true, bool)
    s = np.asarray(y_score, float)
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, tie_group, tie_counts = np.unique(s, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(tie_counts)
    ranks = (last_rank - (tie_counts - 1) / 2)[tie_group]  # average rank of each run of equal scores
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def best_f1_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The threshold that maximises F1 of ``score >= threshold``; 0.5 when the label never occurs.

    Returns the midpoint between the chosen score and the next lower one, so that the choice does
    not sit exactly on a validation score.
    """
    t = np.asarray(y_true, bool)
    s = np.asarray(y_score, float)
    if not t.any():
        return 0.5
    order = np.argsort(-s, kind="mergesort")
    s_sorted, t_sorted = s[order], t[order]
    tp = np.cumsum(t_sorted)
    fp = np.cumsum(~t_sorted)
    last_of_run = np.r_[np.diff(s_sorted) != 0, True]  # only cut between distinct scores
    f1 = np.where(last_of_run, 2 * tp / (tp + fp + t.sum()), -1.0)
    k = int(np.argmax(f1))
    lower = s_sorted[k + 1] if k + 1 < len(s_sorted) else 0.0
    return float((s_sorted[k] + lower) / 2)


def pair_confusion(y_true: np.ndarray, y_pred: np.ndarray, a: int, b: int) -> dict[str, dict[str, int]]:
    """How crops that truly carry exactly one of labels ``a`` and ``b`` are predicted with respect to the two.

    Rows: ``"a"`` / ``"b"`` (true label); columns: ``"a"``, ``"b"``, ``"both"``, ``"neither"`` (prediction).
    """
    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    table: dict[str, dict[str, int]] = {}
    for name, only in (("a", t[:, a] & ~t[:, b]), ("b", t[:, b] & ~t[:, a])):
        pa, pb = p[only, a], p[only, b]
        table[name] = {
            "a": int((pa & ~pb).sum()),
            "b": int((pb & ~pa).sum()),
            "both": int((pa & pb).sum()),
            "neither": int((~pa & ~pb).sum()),
        }
    return table


def classification_report(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    labels: tuple[str, ...],
    thresholds: dict[str, float] | None = None,
) -> dict:
    """Per-label support, ROC-AUC, and precision/recall/F1 at 0.5 and (when given) at chosen thresholds.

    Also the calcification-versus-mass confusion (at 0.5) when both labels are present.
    """
    y_true = np.asarray(y_true, bool).reshape(-1, len(labels))
    y_prob = np.asarray(y_prob, float).reshape(-1, len(labels))
    per_label = {}
    for j, label in enumerate(labels):
        entry = {"support": int(y_true[:, j].sum()), "roc_auc": roc_auc(y_true[:, j], y_prob[:, j])}
        cuts = {"at_0.5": 0.5}
        if thresholds and label in thresholds:
            cuts["at_chosen"] = float(thresholds[label])
        for name, cut in cuts.items():
            p, r, f = precision_recall_f1(y_true[:, j], y_prob[:, j] >= cut)
            entry[name] = {"threshold": cut, "precision": p, "recall": r, "f1": f}
        per_label[label] = entry
    report: dict = {"crops": int(len(y_true)), "labels": per_label}
    if "calcification" in labels and "mass" in labels:
        table = pair_confusion(y_true, y_prob >= 0.5, labels.index("calcification"), labels.index("mass"))
        rename = {"a": "calcification", "b": "mass"}
        report["calcification_vs_mass"] = {
            rename[row]: {rename.get(col, col): n for col, n in cols.items()} for row, cols in table.items()
        }
    return report


def format_report(report: dict) -> str:
    """A plain-text table of :func:`classification_report`'s result."""
    head = f"{'label':<26}{'support':>8}{'AUC':>7}   {'P@0.5':>6}{'R@0.5':>6}{'F1@0.5':>7}   {'thr':>5}{'P':>6}{'R':>6}{'F1':>6}"
    lines = [f"{report['crops']} crops", head, "-" * len(head)]
    for label, e in report["labels"].items():
        a = e["at_0.5"]
        line = f"{label:<26}{e['support']:>8}{_number(e['roc_auc']):>7}   {a['precision']:>6.3f}{a['recall']:>6.3f}{a['f1']:>7.3f}"
        if "at_chosen" in e:
            c = e["at_chosen"]
            line += f"   {c['threshold']:>5.2f}{c['precision']:>6.3f}{c['recall']:>6.3f}{c['f1']:>6.3f}"
        lines.append(line)
    if "calcification_vs_mass" in report:
        lines.append("")
        lines.append("true \\ predicted (at 0.5)   calcification   mass   both   neither")
        for row, cols in report["calcification_vs_mass"].items():
            lines.append(
                f"{row:<27}{cols['calcification']:>13}{cols['mass']:>7}{cols['both']:>7}{cols['neither']:>10}"
            )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    """Three decimals, or '–' for a value that is undefined (NaN, or null after a JSON round trip)."""
    return f"{value:.3f}" if value is not None and np.isfinite(value) else "–"
