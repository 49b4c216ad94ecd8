"""Patient-wise splitter: no patient in two splits, deterministic, fractions honoured, rare labels spread."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from correlax.data import Finding, ImageRecord, patient_split


def cohort(n_patients=200, images_per_patient=4, seed=1):
    """Patients with 4 images; 10% carry a calcification, 30% a mass, a handful a lymph node."""
    rng = random.Random(seed)
    records = []
    for p in range(n_patients):
        u = rng.random()
        label = "calcification" if u < 0.1 else "mass" if u < 0.4 else "lymph_node" if u < 0.43 else None
        for i in range(images_per_patient):
            findings = [Finding(label, (1, 1, 5, 5))] if label and i == 0 else [Finding("no_finding")]
            records.append(
                ImageRecord(image_id=f"p{p}-{i}", path=f"p{p}-{i}.png", patient_id=f"p{p}", findings=findings)
            )
    return records


def split_of_patient(records):
    splits: dict[str, set] = {}
    for r in records:
        splits.setdefault(r.patient_id, set()).add(r.split)
    return splits


def test_no_patient_in_two_splits_and_fractions_honoured():
    records = patient_split(cohort())
    assert all(len(s) == 1 for s in split_of_patient(records).values())
    counts = Counter(r.split for r in records)
    assert sum(counts.values()) == 800
    for name, fraction in {"train": 0.7, "val": 0.15, "test": 0.15}.items():
        assert abs(counts[name] / 800 - fraction) < 0.02, counts


def test_deterministic_and_order_independent():
    records = cohort()
    first = [r.split for r in patient_split(records, seed=3)]
    assert first == [r.split for r in patient_split(records, seed=3)]
    shuffled = records[::-1]
    by_id = {r.image_id: r.split for r in patient_split(shuffled, seed=3)}
    assert first == [by_id[r.image_id] for r in records]
    assert first != [r.split for r in patient_split(records, seed=4)]


def test_rare_labels_reach_every_split():
    records = patient_split(cohort())
    for label in ("calcification", "mass"):
        positive = {r.patient_id: r.split for r in records if label in r.labels}
        counts = Counter(positive.values())
        assert set(counts) == {"train", "val", "test"}, (label, counts)
        assert abs(counts["train"] / len(positive) - 0.7) < 0.1, (label, counts)


def test_keep_existing_splits():
    records = cohort(n_patients=40)
    for r in records:
        r.split = "test" if int(r.patient_id[1:]) < 10 else "train"
    result = patient_split(records, {"train": 0.8, "val": 0.2}, keep={"test"})
    for before, after in zip(records, result, strict=True):
        if before.split == "test":
            assert after.split == "test"
        else:
            assert after.split in {"train", "val"}
    assert Counter(split_of_patient(result)[f"p{p}"].pop() for p in range(10, 40)) == {"train": 24, "val": 6}
    assert records[40].split == "train"  # the input is not modified


def test_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        patient_split(cohort(4), {"train": 0.0})


def test_kfold_every_patient_tested_once_and_never_trained_on_in_its_fold():
    from correlax.data.split import kfold_splits

    records = cohort(n_patients=50)
    folds = kfold_splits(records, 5, seed=3)
    assert len(folds) == 5 and all(len(f) == len(records) for f in folds)
    tested = Counter()
    for fold in folds:
        test = {r.patient_id for r in fold if r.split == "test"}
        train = {r.patient_id for r in fold if r.split == "train"}
        assert test and train and not test & train and {r.split for r in fold} == {"train", "test"}
        tested.update(test)
        assert 8 <= len(test) <= 12  # about a fifth of the 50 patients
        assert any("calcification" in r.labels for r in fold if r.split == "test")  # stratified: rare label in every fold
    assert set(tested) == {r.patient_id for r in records} and set(tested.values()) == {1}
    again = kfold_splits(records[::-1], 5, seed=3)  # the folds depend on the seed, not on the record order
    assert [{r.image_id for r in f if r.split == "test"} for f in folds] == [{r.image_id for r in f if r.split == "test"} for f in again]
    with pytest.raises(ValueError, match="patients"):
        kfold_splits(records[:8], 5)
