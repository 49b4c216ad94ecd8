"""Pooling out-of-fold results: crop-level F1/AUC with patient-bootstrap intervals, Pointing Game with Wilson
intervals, paired sign tests.

Pure functions on arrays and outcome records. An outcome record is one (image, class, method) of the
Pointing Game: ``{"image_id", "label", "method", "reference_hit", "standard_hit", ...}``. Every image is
a test image in exactly one fold, so the pooled records hold each (image, class) once per method.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from correlax.evaluation.classification import best_f1_threshold, precision_recall_f1, roc_auc
from correlax.evaluation.pointing_game import PROTOCOLS, Outcome, summarise_outcomes

BASELINES = ("center", "gradcam")


@dataclass(frozen=True)
class FoldCrops:
    """One fold model's scores on its held-out crops."""

    probs: np.ndarray  # (N, L)
    targets: np.ndarray  # (N, L) bool
    thresholds: Mapping[str, float]  # the fold model's, chosen on validation
    patients: np.ndarray | None = None  # (N,) each crop's patient: intervals resample whole patients


@dataclass(frozen=True)
class PooledCrops:
    """The out-of-fold crops of every fold, each decided by its own fold's model and threshold."""

    probs: np.ndarray  # (N, L)
    targets: np.ndarray  # (N, L) bool
    chosen: np.ndarray  # (N, L) bool
    patients: np.ndarray | None  # (N,), or None when a fold did not record them

    @classmethod
    def of(cls, folds: Sequence[FoldCrops], labels: Sequence[str]) -> PooledCrops:
        n = len(labels)
        probs = [np.asarray(f.probs, float).reshape(-1, n) for f in folds]
        chosen = [p >= [f.thresholds.get(label, 0.5) for label in labels] for p, f in zip(probs, folds)]
        targets = np.concatenate([np.asarray(f.targets, bool).reshape(-1, n) for f in folds])
        known = all(f.patients is not None for f in folds)
        patients = np.concatenate([np.asarray(f.patients, str) for f in folds]) if known else None
        return cls(np.concatenate(probs), targets, np.concatenate(chosen), patients)

    def scores(self, rows: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(F1 at the fold thresholds, ROC-AUC) per label on ``rows``; AUC NaN where a label has one class."""
        t, c, p = self.targets[rows], self.chosen[rows], self.probs[rows]
        f1 = np.array([precision_recall_f1(t[:, j], c[:, j])[2] for j in range(t.shape[1])])
        auc = np.array([roc_auc(t[:, j], p[:, j]) for j in range(t.shape[1])])
        return f1, auc


def cross_fold_thresholds(folds: Sequence[FoldCrops], labels: Sequence[str]) -> list[dict[str, float]]:
    """Per fold, the F1-best threshold of each label on the other folds' out-of-fold crops: crops of that fold's
    training images, each scored by a model that did not train on it. Many more crops than a validation split
    (and never the fold's own), so the threshold holds better on new films."""
    n = len(labels)
    out = []
    for k in range(len(folds)):
        others = [f for i, f in enumerate(folds) if i != k]
        probs = np.concatenate([np.asarray(f.probs, float).reshape(-1, n) for f in others])
        targets = np.concatenate([np.asarray(f.targets, bool).reshape(-1, n) for f in others])
        out.append({label: best_f1_threshold(targets[:, j], probs[:, j]) for j, label in enumerate(labels)})
    return out


def patient_resamples(runs: Sequence[PooledCrops], n_resamples: int, seed: int) -> list[list[np.ndarray]]:
    """Bootstrap row indices, one list per run: each resample draws patients with replacement (crops of a
    patient are not independent) and takes every crop of each drawn patient in every run, so the runs stay
    paired. Only patients present in every run are drawn."""
    if any(r.patients is None for r in runs):
        raise ValueError("crops without patient ids (written by an earlier version): score the fold models again")
    common = sorted(set.intersection(*(set(r.patients.tolist()) for r in runs)))
    if not common:
        raise ValueError("the runs share no patient")
    rows = [[np.flatnonzero(r.patients == p) for p in common] for r in runs]
    rng = np.random.default_rng(seed)
    resamples: list[list[np.ndarray]] = [[] for _ in runs]
    for _ in range(n_resamples):
        drawn = rng.integers(0, len(common), len(common))
        for out, own in zip(resamples, rows):
            out.append(np.concatenate([own[i] for i in drawn]))
    return resamples


def _interval(values: np.ndarray) -> list[float | None]:
    """95 % percentile interval of bootstrap values, resamples where the value is undefined (NaN) left out."""
    v = values[~np.isnan(values)]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) else [None, None]


def pool_classification(
    folds: Sequence[FoldCrops], labels: Sequence[str], n_resamples: int = 2000, seed: int = 0
) -> dict:
    """Crop-level metrics over the out-of-fold crops of every fold.

    Each crop is decided by its own fold's model and threshold; F1 is computed on the pooled decisions,
    ROC-AUC on the pooled probabilities. Also F1 at 0.5, F1 at thresholds chosen on the other folds' out-of-fold
    crops (:func:`cross_fold_thresholds`; still scored on held-out crops only) and the support. When every fold recorded its crops'
    patients: ``ci95`` of F1 and AUC per label, a bootstrap over patients (``bootstrap``: how many).
    """
    pooled = PooledCrops.of(folds, labels)
    cross = cross_fold_thresholds(folds, labels) if len(folds) > 1 else None
    pooled_cross = PooledCrops.of([replace(f, thresholds=t) for f, t in zip(folds, cross)], labels) if cross else None
    f1, auc = pooled.scores()
    out: dict = {"f1": {}, "f1_at_0.5": {}, "auc": {}, "support": {}}
    if pooled_cross is not None:
        out["f1_at_cross_fold_threshold"] = dict(zip(labels, map(float, pooled_cross.scores()[0])))
        out["cross_fold_thresholds"] = cross
    for j, label in enumerate(labels):
        out["f1"][label] = float(f1[j])
        out["f1_at_0.5"][label] = precision_recall_f1(pooled.targets[:, j], pooled.probs[:, j] >= 0.5)[2]
        out["auc"][label] = None if np.isnan(auc[j]) else float(auc[j])
        out["support"][label] = int(pooled.targets[:, j].sum())
    if pooled.patients is not None:
        resamples = patient_resamples([pooled], n_resamples, seed)[0]
        boot = [pooled.scores(rows) for rows in resamples]
        metrics = {"f1": np.array([b[0] for b in boot]), "auc": np.array([b[1] for b in boot])}
        if pooled_cross is not None:  # the same crops in the same order: the same resamples
            metrics["f1_at_cross_fold_threshold"] = np.array([pooled_cross.scores(rows)[0] for rows in resamples])
        out["ci95"] = {name: {label: _interval(values[:, j]) for j, label in enumerate(labels)}
                       for name, values in metrics.items()}  # fmt: skip
        out["bootstrap"] = {"patients": len(set(pooled.patients.tolist())), "resamples": n_resamples}
    return out


def paired_crop_scores(
    a: PooledCrops, b: PooledCrops, labels: Sequence[str], n_resamples: int = 2000, seed: int = 0
) -> dict:
    """Run b against run a, per label: the difference of F1 and of AUC (b − a), its 95 % bootstrap interval and
    a two-sided bootstrap p (twice the share of resamples on the far side of 0), resampling the patients both
    runs scored. The runs' crops need not be the same crops (another resolution, another protocol)."""
    rows_a, rows_b = patient_resamples([a, b], n_resamples, seed)
    diffs = np.array([np.subtract(b.scores(rb), a.scores(ra)) for ra, rb in zip(rows_a, rows_b)])  # (R, 2, L)
    shared = np.intersect1d(a.patients, b.patients)  # the observed difference on the patients resampled
    observed = np.subtract(b.scores(np.isin(b.patients, shared)), a.scores(np.isin(a.patients, shared)))
    out: dict = {}
    for j, label in enumerate(labels):
        out[label] = {}
        for m, metric in enumerate(("f1", "auc")):
            values = diffs[:, m, j][~np.isnan(diffs[:, m, j])]
            p = float(min(1.0, 2 * min((values <= 0).mean(), (values >= 0).mean()))) if len(values) else None
            out[label][metric] = {"delta": None if np.isnan(observed[m, j]) else float(observed[m, j]),
                                  "ci95": _interval(diffs[:, m, j]), "p": p}  # fmt: skip
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
