"""Pooling out-of-fold results: crop-level F1/AUC, Pointing Game with Wilson intervals, paired sign tests.

Pure functions on arrays and outcome records. An outcome record is one (image, class, method) of the
Pointing Game: ``{"image_id", "label", "method", "reference_hit", "standard_hit", ...}``. Every image is
a test image in exactly one fold, so the pooled records hold each (image, class) once per method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from correlax.evaluation.classification import precision_recall_f1, roc_auc
from correlax.evaluation.pointing_game import PROTOCOLS, Outcome, summarise_outcomes

BASELINES = ("center", "gradcam")


def pool_classification(
    folds: Sequence[tuple[np.ndarray, np.ndarray, Mapping[str, float]]], labels: Sequence[str]
) -> dict:
    """Crop-level metrics over the out-of-fold crops of every fold.

    ``folds``: (probabilities (N, L), targets (N, L) bool, the fold model's validation thresholds).
    Each crop is decided by its own fold's model and threshold; F1 is computed on the pooled decisions,
    ROC-AUC on the pooled probabilities. Also F1 at 0.5 and the support.
    """
    probs = np.concatenate([np.asarray(p, float).reshape(-1, len(labels)) for p, _, _ in folds])
    targets = np.concatenate([np.asarray(t, bool).reshape(-1, len(labels)) for _, t, _ in folds])
    chosen = np.concatenate(
        [np.asarray(p, float).reshape(-1, len(labels)) >= [thr.get(label, 0.5) for label in labels] for p, _, thr in folds]
    )
    out: dict = {"f1": {}, "f1_at_0.5": {}, "auc": {}, "support": {}}
    for j, label in enumerate(labels):
        out["f1"][label] = precision_recall_f1(targets[:, j], chosen[:, j])[2]
        out["f1_at_0.5"][label] = precision_recall_f1(targets[:, j], probs[:, j] >= 0.5)[2]
        auc = roc_auc(targets[:, j], probs[:, j])
        out["auc"][label] = None if np.isnan(auc) else auc
        out["support"][label] = int(targets[:, j].sum())
    return out


def outcomes_by_method(records: Iterable[Mapping]) -> dict[str, dict[tuple[str, str], Mapping]]:
    """Outcome records grouped by method, keyed by (image_id, label); a repeated key is an error."""
    grouped: dict[str, dict[tuple[str, str], Mapping]] = {}
    for r in records:
        per_method = grouped.setdefault(r["method"], {})
        key = (str(r["image_id"]), r["label"])
        if key in per_method:
            raise ValueError(f"image {key[0]} class {key[1]} is scored twice for {r['method']} (in two folds?)")
        per_method[key] = r
    return grouped


def per_image(outcomes: Mapping[tuple[str, str], Mapping]) -> list[Outcome]:
    """(image_id, label)-keyed records of one method as per-image outcomes, for :func:`summarise_outcomes`."""
    images: dict[str, Outcome] = {}
    for (image_id, label), r in outcomes.items():
        images.setdefault(image_id, {})[label] = {p: bool(r[f"{p}_hit"]) for p in PROTOCOLS}
    return list(images.values())


def pool_pointing_game(records: Iterable[Mapping], labels: Sequence[str]) -> dict:
    """{method: {"n_images", "reference": {...}, "standard": {...}}} over all folds' outcome records."""
    return {m: summarise_outcomes(per_image(o), labels) for m, o in outcomes_by_method(records).items()}


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test (McNemar's exact test) on the discordant pairs; 1.0 when there are none."""
    n, k = wins + losses, min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def paired_comparison(
    a: Mapping[tuple[str, str], Mapping], b: Mapping[tuple[str, str], Mapping], protocol: str = "reference"
) -> dict:
    """Method a against method b on the (image, class) pairs both scored: wins (a hits, b misses),
    losses (b hits, a misses), ties and the sign test's p."""
    common = a.keys() & b.keys()
    wins = sum(bool(a[k][f"{protocol}_hit"]) and not b[k][f"{protocol}_hit"] for k in common)
    losses = sum(bool(b[k][f"{protocol}_hit"]) and not a[k][f"{protocol}_hit"] for k in common)
    return {"wins": wins, "losses": losses, "ties": len(common) - wins - losses, "p": sign_test(wins, losses)}


def paired_against(
    records: Iterable[Mapping], baselines: Sequence[str] = BASELINES, protocol: str = "reference"
) -> dict:
    """{method: {"vs_<baseline>": paired_comparison}} for every method, against each baseline that was scored."""
    grouped = outcomes_by_method(records)
    return {
        method: {f"vs_{b}": paired_comparison(own, grouped[b], protocol) for b in baselines if b in grouped and b != method}
        for method, own in grouped.items()
    }
