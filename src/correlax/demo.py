"""The main job, end to end on synthetic mammograms the project makes itself.

synthetic data set → crop classifier → crop-level evaluation → CorRELAX and baseline heatmaps of the
test images → Pointing Game → ``metrics.json`` and the HTML report. Every stage writes its output
under one folder and is skipped when that output is already there, so an interrupted demo resumes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from correlax.data import load_vindr
from correlax.data.records import Manifest, atomic_write_text
from correlax.data.split import carve_val
from correlax.data.synthetic import make_synthetic_dataset
from correlax.evaluation.localisation import METHODS, classifier_summary, explain_and_score
from correlax.explain import CorrelaxSettings
from correlax.models import load_checkpoint
from correlax.report import write_report
from correlax.training import TrainConfig, evaluate_checkpoint, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    images: int = 48  # synthetic images (whole four-view studies)
    size: int = 512  # longest image side
    input_size: int = 96  # crop and window side
    epochs: int = 12
    steps_per_epoch: int = 25
    batch_size: int = 32
    n_masks: int = 128
    stride: int = 16
    max_panels: int = 12
    seed: int = 0


QUICK = DemoConfig(images=24, size=384, input_size=64, epochs=4, steps_per_epoch=12, n_masks=32, stride=16, max_panels=4)


def run_demo(out: str | Path, config: DemoConfig = DemoConfig(), say: Callable[[str], None] = print) -> dict:
    """Run every stage under ``out``; return the metrics (also written to ``out/metrics.json``)."""
    out = Path(out)
    started = time.perf_counter()

    def stage(text: str) -> None:
        say(f"[{time.perf_counter() - started:6.1f} s] {text}")

    manifest_path = out / "data" / "manifest.json"
    if not manifest_path.exists():
        stage(f"making {config.images} synthetic mammograms ({config.size} px) in {out / 'data'}")
        root = make_synthetic_dataset(out / "data", config.images, config.seed, size=config.size)
        manifest = load_vindr(root)
        manifest.records = carve_val(manifest.records, 0.2, config.seed)
        manifest.source = "synthetic"
        manifest.save(manifest_path)
    manifest = Manifest.load(manifest_path)
    summary = manifest.summary()
    stage(f"data: {summary['images']} images, {summary['patients']} patients, splits {summary['splits']}")

    model_path = out / "model" / "model.safetensors"
    if not model_path.exists():
        stage(f"training the crop classifier ({config.epochs} epochs × {config.steps_per_epoch} steps, tiny CNN)")
        train(
            TrainConfig(
                data=str(manifest_path), out=str(out / "model"), backbone="tiny", pretrained=False,
                input_size=config.input_size, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                batch_size=config.batch_size, lr=3e-3, min_lr=1e-4, seed=config.seed, accelerator="cpu", devices=1,
            )
        )  # fmt: skip

    stage("crop-level evaluation on the test split")
    classification = evaluate_checkpoint(model_path, manifest_path, "test", cache_dir=out / "model" / "cache")
    for label, entry in classification["labels"].items():
        at = entry["at_0.5"]
        stage(f"  {label:<16} precision {at['precision']:.3f} recall {at['recall']:.3f} F1 {at['f1']:.3f}")

    model, info = load_checkpoint(model_path)
    settings = CorrelaxSettings(
        window=info.input_size, stride=config.stride, n_masks=config.n_masks, seed=config.seed, batch_size=512
    )
    stage(f"explaining the test images: {', '.join(METHODS)}")
    localisation = explain_and_score(
        model, info.preprocess_settings, manifest, manifest.split("test"), METHODS, settings,
        cache_dir=out / "maps", max_panels=config.max_panels,
    )  # fmt: skip
    for path, reason in localisation.failures:
        stage(f"  failed: {path}: {reason}")

    metrics = {
        "title": "correlax demo — synthetic mammograms",
        "run": {
            "data": f"{summary['images']} synthetic images ({config.size} px), {summary['patients']} patients",
            "model": f"{info.backbone}, input {info.input_size} px, {config.epochs} epochs",
            "CorRELAX": f"window {settings.window}, stride {settings.stride}, {settings.n_masks} masks",
            "wall time": f"{time.perf_counter() - started:.0f} s",
        },
        "classifier": classifier_summary(classification),
        "classification": classification,
        "pointing_game": localisation.pointing_game,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=1))
    report = write_report(out / "report", metrics, localisation.panels)
    for method, block in localisation.pointing_game.items():
        ref, std = block["reference"], block["standard"]
        stage(f"  Pointing Game {method:<21} reference average {ref['average']:.3f}   standard {std['class_mean']:.3f}")
    stage(f"metrics: {out / 'metrics.json'}; report: {report}")
    return metrics
