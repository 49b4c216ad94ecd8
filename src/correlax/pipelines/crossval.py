"""``correlax crossval`` as a library call: K patient-wise folds, one model per fold, pooled out-of-fold results.

Per fold i, under ``OUT/fold<i>/``: ``manifest.json`` (fold i's patients "test", the others "train"; the
training carves its validation patients out of "train", so the checkpoint and the thresholds are chosen
without the test fold), ``model/`` (the training run), ``maps/`` (the map store of the Pointing Game) and
``fold.json``, written last: a fold whose ``fold.json`` exists is skipped, an interrupted one resumes
(training from ``last.ckpt``, explanations from the map store); a fold made with other settings is an
error, not mixed in. ``OUT/cache`` holds the prepared images the folds share. The pooled result goes
to ``OUT/crossval.json``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from correlax.crops import CropSettings
from correlax.data.records import Manifest
from correlax.data.split import kfold_splits
from correlax.evaluation.crossval import FoldCrops, paired_against, pool_classification, pool_pointing_game
from correlax.explain import CorrelaxSettings
from correlax.explain.settings import RunSettings
from correlax.fileio import atomic_write_bytes, write_json
from correlax.models import load_checkpoint
from correlax.pipelines.pointing_game import LocalisationJob, explain_and_score, geometry_mm
from correlax.provenance import provenance
from correlax.training import TrainConfig, train
from correlax.training.predict import crop_predictions

log = logging.getLogger(__name__)

EVAL_SEED = 1234  # crops of the held-out fold are planned with this seed, as in ``correlax evaluate``


@dataclass(frozen=True)
class CrossvalConfig:
    """One cross-validation: folds, the training recipe, the explanation settings and methods, where to write."""
    out: Path
    folds: int
    train: TrainConfig  # its ``data`` is the whole manifest; ``out`` is replaced per fold
    settings: CorrelaxSettings
    methods: tuple[str, ...]
    margin_px: float | None = None  # reference protocol margin; None: the stride
    tolerance_mm: float | None = None
    split_seed: int = 0
    device: str | None = None  # where the folds' models explain; None: cuda when available
    run: RunSettings = RunSettings()  # how the network runs (changes no number)
    models_from: Path | None = None  # an earlier run with the same folds and training: its fold models, not trained anew

    def describe(self) -> dict:
        train = {k: v for k, v in dataclasses.asdict(self.train).items() if k not in ("out", "resume")}
        return {"folds": self.folds, "split_seed": self.split_seed, "train": train,
                "correlax": self.settings.to_dict(), "methods": list(self.methods), "margin_px": self.margin_px,
                "tolerance_mm": self.tolerance_mm, "models_from": self.models_from and str(self.models_from)}  # fmt: skip


def run_fold(config: CrossvalConfig, manifest: Manifest, fold: int, say: Callable[[str], None]) -> dict:
    """Train, evaluate crops and play the Pointing Game on one fold; returns (and writes) ``fold.json``."""
    fold_dir = config.out / f"fold{fold}"
    manifest_path = fold_dir / "manifest.json"
    if not manifest_path.exists():
        manifest.save(manifest_path)
    fold_manifest = Manifest.load(manifest_path)
    model_path = fold_dir / "model" / "model.safetensors"
    cache = config.train.cache_dir or config.out / "cache"  # prepared images, shared by the folds
    if config.models_from is not None:
        model_path = borrowed_model(config, fold_manifest, fold)
    elif not model_path.exists():
        say(f"fold {fold}: training on {len(fold_manifest.split('train'))} images")
        train(dataclasses.replace(config.train, data=str(manifest_path), out=str(fold_dir / "model"), resume=True,
                                  cache_dir=str(cache)))  # fmt: skip
    test = fold_manifest.split("test")
    # the held-out crops leave out the extra No Finding crops of training, so crop scores compare across those levers
    crops = dataclasses.replace(CropSettings(**config.train.crops), normal_crops_per_boxed_image=0, skin_crops_per_image=0)
    pred = crop_predictions(model_path, fold_manifest, test, cache, crops, EVAL_SEED)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probs=pred.probs, targets=pred.targets, patients=pred.patients(test))
    atomic_write_bytes(fold_dir / "crops.npz", buffer.getvalue())
    say(f"fold {fold}: {len(pred.probs)} test crops; explaining the boxed test images")
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, info = load_checkpoint(model_path, map_location=device)
    job = LocalisationJob(model, info.preprocess_settings, fold_manifest, test, config.methods, config.settings,
                          store_dir=fold_dir / "maps", run=config.run, tolerance_mm=config.tolerance_mm,
                          margin_px=config.margin_px, max_panels=0)  # fmt: skip
    localisation = explain_and_score(job)
    result = {
        "config": config.describe(),
        "fold": fold,
        "test_images": len(test),
        "test_patients": len({r.patient_id for r in test}),
        "labels": list(pred.labels),
        "thresholds": pred.thresholds,
        "pointing_game": localisation.pointing_game,
        "outcomes": localisation.outcomes,
        "spacings": [list(s) for s in localisation.spacings],
        "failures": pred.failures + [{"path": p, "reason": r} for p, r in localisation.failures],
    }
    write_json(fold_dir / "fold.json", result)
    return result


def comparable(described: dict) -> dict:
    """A run's settings (:meth:`CrossvalConfig.describe`) as they read back from JSON, with the crop settings'
    defaults filled in: a fold made before a crop option existed compares equal to one made with its default."""
    train = described["train"] | {"crops": CropSettings(**described["train"]["crops"]).__dict__}
    return json.loads(json.dumps(described | {"train": train}))


def borrowed_model(config: CrossvalConfig, manifest: Manifest, fold: int) -> Path:
    """Fold ``fold``'s model of the run ``config.models_from``, checked to hold out the same images and to have
    been trained as ``config.train`` asks."""
    source = config.models_from / f"fold{fold}"
    try:
        theirs = json.loads((source / "fold.json").read_text())
        held_out = {r.image_id for r in Manifest.load(source / "manifest.json").split("test")}
    except (OSError, ValueError) as e:
        raise ValueError(f"{source}: not a finished crossval fold ({e})") from e
    if held_out != {r.image_id for r in manifest.split("test")}:
        raise ValueError(f"{source}: fold {fold} holds out other images (another --folds or --split-seed?)")
    ours, trained = comparable(config.describe())["train"], comparable(theirs["config"])["train"]
    changed = sorted(k for k in ours.keys() | trained.keys() if k != "cache_dir" and ours.get(k) != trained.get(k))
    if changed:
        raise ValueError(f"{source}: its model was trained with other options ({', '.join(changed)})")
    return source / "model" / "model.safetensors"


def pool_folds(config: CrossvalConfig, folds: Sequence[dict], wall_s: float) -> dict:
    """The pooled out-of-fold result (the JSON ``correlax crossval`` writes)."""
    labels = tuple(folds[0]["labels"])
    crops = []
    for f in folds:
        with np.load(config.out / f"fold{f['fold']}" / "crops.npz") as z:
            patients = z["patients"] if "patients" in z.files else None  # folds made before patients were kept
            crops.append(FoldCrops(z["probs"], z["targets"], f["thresholds"], patients))
    records = [r for f in folds for r in f["outcomes"]]
    pointing = pool_pointing_game(records, labels)
    margin_px = config.settings.stride if config.margin_px is None else config.margin_px
    geometry = geometry_mm(config.settings, margin_px, [tuple(s) for f in folds for s in f["spacings"]])
    first = next(iter(pointing.values()), {"reference": {"per_class": {}}})
    return {
        "provenance": provenance(),
        "config": config.describe(),
        **geometry,
        "n_images": {label: v["n"] for label, v in first["reference"]["per_class"].items()},
        "classifier": pool_classification(crops, labels),
        "pointing_game": pointing,
        "paired": paired_against(records),
        "folds": [
            {k: f[k] for k in ("fold", "test_images", "test_patients", "thresholds", "failures")}
            | {"pointing_game": {m: {p: b[p] for p in ("reference", "standard")} for m, b in f["pointing_game"].items()}}
            for f in folds
        ],
        "wall_s": wall_s,
        "outcomes": records,  # per (image, class, method): what another run is paired against
    }


def run_crossval(config: CrossvalConfig, say: Callable[[str], None] = print) -> dict:
    """Every fold (skipping those already done), then the pooled result, written to ``OUT/crossval.json``."""
    started = time.perf_counter()
    manifest = Manifest.load(config.train.data)
    current = comparable(config.describe())
    folds = []
    for i, records in enumerate(kfold_splits(manifest.records, config.folds, config.split_seed)):
        done = config.out / f"fold{i}" / "fold.json"
        if done.exists():
            previous = json.loads(done.read_text())
            made = comparable(previous["config"]) if "config" in previous else {}
            changed = sorted(k for k, v in current.items() if made.get(k) != v)
            if changed:
                raise ValueError(f"{done} was made with other settings ({', '.join(changed)}): give another --out")
            say(f"fold {i}: done before, skipped ({done})")
            folds.append(previous)
            continue
        fold_manifest = dataclasses.replace(manifest, records=records)
        folds.append(run_fold(config, fold_manifest, i, say))
    pooled = pool_folds(config, folds, time.perf_counter() - started)
    write_json(config.out / "crossval.json", pooled)
    return pooled
