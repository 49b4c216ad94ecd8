"""Patient-wise train/val/test assignment: a woman's images never land in two splits."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from correlax.data.records import ImageRecord
from correlax.labels import LABELS

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def patient_split(
    records: Sequence[ImageRecord],
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    stratify: bool = True,
    keep: Collection[str] = (),
) -> list[ImageRecord]:
    """Return copies of ``records`` with ``split`` assigned patient by patient (:func:`patient_assignment`)."""
    assignment = patient_assignment(records, fractions, seed, stratify, keep)
    return [replace(r, split=assignment[r.patient_id], findings=list(r.findings)) for r in records]


def patient_assignment(
    records: Sequence[ImageRecord],
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    stratify: bool = True,
    keep: Collection[str] = (),
) -> dict[str, str]:
    """The split name (a key of ``fractions``, or a kept split) of each patient id.

    Patients with an image whose current split is in ``keep`` stay there (all their images); every
    other patient is assigned to one of ``fractions``'s splits so that the image counts follow the
    fractions (normalised to sum 1). VinDr-Mammo: ``patient_split(r, {"train": .85, "val": .15},
    keep={"test"})`` carves a validation set out of the official training split.

    With ``stratify`` each patient is grouped by the rarest label among their images, and every
    group is spread over the splits in proportion, so rare findings reach val and test too.
    The result depends only on ``seed`` and the records, not on their order.
    """
    if not fractions or any(f < 0 for f in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"fractions must be non-negative and not all zero, got {dict(fractions)}")
    total_fraction = sum(fractions.values())
    targets = {name: f / total_fraction for name, f in fractions.items()}

    by_patient: dict[str, list[ImageRecord]] = defaultdict(list)
    for r in records:
        by_patient[r.patient_id].append(r)

    assignment: dict[str, str] = {}
    free: list[str] = []
    for patient, images in by_patient.items():
        kept = {r.split for r in images if r.split in keep}
        if len(kept) > 1:
            raise ValueError(f"patient {patient} has images in several kept splits: {sorted(kept)}")  # type: ignore[type-var]
        if kept:
            assignment[patient] = kept.pop()  # type: ignore[assignment]
        else:
            free.append(patient)

    labels_of = {p: set().union(*(r.labels for r in by_patient[p])) - {"no_finding"} for p in free}
    frequency = Counter(label for p in free for label in labels_of[p])

    def stratum(patient: str) -> int:
        """Index of the patient's rarest label (ties: label order); no finding sorts last."""
        if not stratify or not labels_of[patient]:
            return len(LABELS)
        return LABELS.index(min(labels_of[patient], key=lambda lab: (frequency[lab], LABELS.index(lab))))

    rng = random.Random(seed)
    ordered: list[str] = []
    for s in sorted({stratum(p) for p in free}):
        group = sorted(p for p in free if stratum(p) == s)
        rng.shuffle(group)
        ordered.extend(group)

    # Walk the strata in turn, giving each patient to the split furthest below its target share of the
    # images dealt so far: each contiguous stratum is thereby spread in proportion as well.
    dealt: Counter[str] = Counter()
    names = list(targets)
    for patient in ordered:
        n = len(by_patient[patient])
        total = sum(dealt.values()) + n
        name = max(names, key=lambda s: (targets[s] * total - dealt[s], targets[s], -names.index(s)))
        assignment[patient] = name
        dealt[name] += n
    return assignment


def carve_val(records: Sequence[ImageRecord], fraction: float, seed: int = 0) -> list[ImageRecord]:
    """Move ``fraction`` of the training patients to 'val' (patient-wise); 'test' stays as it is."""
    if fraction <= 0:
        return list(records)
    return patient_split(records, {"train": 1 - fraction, "val": fraction}, seed=seed, keep={"test"})


def kfold_splits(records: Sequence[ImageRecord], k: int, seed: int = 0) -> list[list[ImageRecord]]:
    """``k`` patient-wise folds, stratified like :func:`patient_split`: for fold i, copies of the records with
    split "test" (fold i's patients) or "train" (everyone else). Every patient is a test patient exactly once."""
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    patients = len({r.patient_id for r in records})
    if patients < k:
        raise ValueError(f"{k} folds need at least {k} patients, got {patients}")
    fold = patient_assignment(records, {f"fold{i}": 1.0 / k for i in range(k)}, seed=seed)
    return [
        [replace(r, split="test" if fold[r.patient_id] == f"fold{i}" else "train", findings=list(r.findings)) for r in records]
        for i in range(k)
    ]
