"""The main job, end to end on synthetic mammograms the project makes itself.

synthetic data set → crop classifier → crop-level evaluation → CorRELAX and baseline heatmaps of the
test images → Pointing Game → ``metrics.json`` and the HTML report. Every stage writes its output
under one folder and is skipped when that output is already there, so an interrupted demo resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from correlax.crops import CropSettings
from correlax.data import load_vindr
from correlax.data.records import Manifest
from correlax.data.split import carve_val
from correlax.data.synthetic import make_synthetic_dataset
from correlax.evaluation.localisation import boxed_records
from correlax.fileio import write_json
from correlax.evaluation.pointing_game import format_pointing_game
from correlax.explain.settings import CorrelaxSettings, RunSettings
from correlax.explain.registry import list_methods
from correlax.models import load_checkpoint
from correlax.pipelines.pointing_game import LocalisationJob, run_pointing_game
from correlax.training import TrainConfig, evaluate_checkpoint, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. Where it departs from the paper's recipe (docs/method.md §9) a tiny CNN must learn
    in CPU minutes, and :func:`run_demo` writes each departure into the run facts."""

    images: int = 160  # synthetic images (whole four-view studies); about a quarter are test images
    size: int = 512  # longest image side
    input_size: int = 64  # crop and window side
    epochs: int = 36
    steps_per_epoch: int = 40
    batch_size: int = 32
    lr: float = 3e-3  # cosine decay to 1e-4
    head: str = "linear"  # the reference head's Dropout(0.5) and 512-wide layer slow a tiny net down
    augment: bool = False  # the reference augmentation (±30°, colour jitter, channel permutation)
    crops_per_box: int = 16
    crops_per_normal_image: int = 8
    crop_area: tuple[float, float] = (0.5, 6.0)  # crop area / box area (reference 0.05-5)
    normal_side: tuple[float, float] = (48.0, 128.0)  # No Finding crop side, px (reference 64-512)
    n_masks: int = 32
    stride: int = 32
    explain_images: int = 0  # boxed test images explained and scored (0: all)
    max_panels: int = 12
    threads: int = 1  # torch threads; 0: torch's default
    seed: int = 0

    def crops(self) -> CropSettings:
        return CropSettings(
            area_range=self.crop_area, crops_per_box=self.crops_per_box,
            crops_per_normal_image=self.crops_per_normal_image, normal_side_range=self.normal_side,
        )  # fmt: skip


QUICK = DemoConfig(
    images=64, size=384, epochs=10, steps_per_epoch=30, n_masks=16, explain_images=6, max_panels=4
)  # fmt: skip


def departures(config: DemoConfig) -> str:
    """How the demo's training departs from the paper's recipe (docs/method.md §9), for the run facts."""
    parts = [
        f"{config.head} head" if config.head != "reference" else "",
        "no augmentation" if not config.augment else "",
        (
            f"Adam lr {config.lr:g} with cosine decay to 1e-4, {config.epochs} × {config.steps_per_epoch} steps of "
            f"{config.batch_size} crops"
        ),
        (
            f"{config.crops_per_box} crops per box of {config.crop_area[0]:g}-{config.crop_area[1]:g}× its area, "
            f"No Finding crops {config.normal_side[0]:g}-{config.normal_side[1]:g} px"
        ),
    ]
    return "; ".join(p for p in parts if p) + " (focal loss α=0.8, γ=2 and class-balanced sampling as the reference)"


def run_demo(out: str | Path, config: DemoConfig = DemoConfig(), say: Callable[[str], None] = print) -> dict:
    """Run every stage under ``out``; return the metrics (also written to ``out/metrics.json``)."""
    out = Path(out)
    started = time.perf_counter()
    if config.threads:
        # the demo's tensors are small: on a shared 2-core machine two OpenMP threads spin against
        # each other and run several times slower than one
        torch.set_num_threads(config.threads)

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

    crops = config.crops()
    model_path = out / "model" / "model.safetensors"
    if not model_path.exists():
        stage(f"training the crop classifier ({config.epochs} epochs × {config.steps_per_epoch} steps, tiny CNN)")
        train(
            TrainConfig(
                data=str(manifest_path), out=str(out / "model"), backbone="tiny", pretrained=False, head=config.head,
                input_size=config.input_size, crops=asdict(crops), epochs=config.epochs,
                steps_per_epoch=config.steps_per_epoch, batch_size=config.batch_size, lr=config.lr, min_lr=1e-4,
                seed=config.seed, accelerator="cpu", devices=1, augment=config.augment,
            )
        )  # fmt: skip

    stage("crop-level evaluation on the test split (crops drawn as for training, without augmentation)")
    classification = evaluate_checkpoint(
        model_path, manifest_path, "test", cache_dir=out / "model" / "cache", crop_settings=crops
    )
    for label, entry in classification["labels"].items():
        at, chosen = entry["at_0.5"], entry.get("at_chosen", entry["at_0.5"])
        stage(
            f"  {label:<16} F1 {at['f1']:.3f} at 0.5, {chosen['f1']:.3f} at the chosen {chosen['threshold']:.2f} "
            f"(precision {chosen['precision']:.3f}, recall {chosen['recall']:.3f})"
        )

    model, info = load_checkpoint(model_path)
    settings = CorrelaxSettings(window=info.input_size, stride=config.stride, n_masks=config.n_masks, seed=config.seed)
    boxed = boxed_records(manifest.split("test"), info.labels)
    explained = boxed[: config.explain_images] if config.explain_images else boxed
    methods = list_methods()
    stage(f"explaining {len(explained)} of {len(boxed)} boxed test images: {', '.join(methods)}")
    run_facts = {
        "data": f"{summary['images']} synthetic images ({config.size} px), {summary['patients']} patients, "
        f"splits {summary['splits']}",
        "model": f"{info.backbone} CNN, {config.head} head, input {info.input_size} px, trained from scratch",
        "training (departures from the paper's recipe)": departures(config),
        "classifier metrics": "crop level on the test images; the classifier block uses each label's "
        "threshold chosen on validation (F1 at 0.5 in the table too)",
        "CorRELAX": f"{settings.n_masks} masks",
        "Pointing Game": f"{len(explained)} of {len(boxed)} test images with boxes",
        "torch threads": str(torch.get_num_threads()),
        "wall time": f"{time.perf_counter() - started:.0f} s before the Pointing Game",
    }
    job = LocalisationJob(model, info.preprocess_settings, manifest, explained, methods, settings, store_dir=out / "maps",
                          run=RunSettings(batch_size=512), max_panels=config.max_panels)  # fmt: skip
    metrics, localisation = run_pointing_game(job, out, run_facts, "correlax demo — synthetic mammograms", classification)
    for path, reason in localisation.failures:
        stage(f"  failed: {path}: {reason}")
    stage("Pointing Game\n" + format_pointing_game(localisation.pointing_game))
    stage(metrics["run"]["CorRELAX geometry"])
    metrics["run"]["wall time"] = f"{time.perf_counter() - started:.0f} s"  # the whole demo, in metrics.json
    write_json(out / "metrics.json", metrics)
    stage(f"metrics: {out / 'metrics.json'}; report: {out / 'report' / 'report.html'}")
    return metrics
