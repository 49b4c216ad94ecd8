"""Explaining many image files: inputs, per-image outputs (atomic, resumable), failures listed at the end.

Per image ``<stem>``: ``<stem>.npz`` (maps and window-grid values, compressed), ``<stem>_<label>.png``
(overlay: prediction and correlation side by side, with colour bars) and ``<stem>.json`` (peak point
and value of every map, written last: its presence marks the image as done).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from correlax.fileio import atomic_write_bytes, atomic_write_text
from correlax.explain.explainer import CorrelaxExplainer, CorrelaxResult, method_maps
from correlax.explain.settings import CorrelaxSettings

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".pgm", ".tif", ".tiff"}
PEAK_MAPS = ("prediction", "corr_pred", "rise")  # per class; corr_dist and relax are single maps


def collect_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for image files (by suffix), sorted, no duplicates."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(p)  # a missing file fails later, with its name, like any bad input
    return list(dict.fromkeys(found))


def peaks(result: CorrelaxResult) -> dict:
    """Peak (x, y, value) of every map inside the breast box, in the prepared image's pixels."""
    x0, y0, x1, y1 = result.breast_box

    def peak(m: np.ndarray) -> dict:
        region = m[y0:y1, x0:x1]
        y, x = np.unravel_index(int(np.argmax(region)), region.shape)
        return {"x": int(x + x0), "y": int(y + y0), "value": float(region[y, x])}

    out: dict = {name: {label: peak(getattr(result, name)[c]) for c, label in enumerate(result.labels)} for name in PEAK_MAPS}
    out["corr_dist"] = peak(result.corr_dist)
    out["relax"] = peak(result.relax)
    return out


def overlay_png(grey: np.ndarray, result: CorrelaxResult, c: int, title: str) -> bytes:
    """Prediction and correlation map of class c over the image, side by side, each with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 5.5), constrained_layout=True)
    panels = ((result.prediction[c], "prediction", "inferno", (0, 1)), (result.corr_pred[c], "correlation", "RdBu_r", (-1, 1)))
    for ax, (heat, name, cmap, (lo, hi)) in zip(axes, panels):
        ax.imshow(grey, cmap="gray")
        im = ax.imshow(heat, cmap=cmap, vmin=lo, vmax=hi, alpha=0.45)
        ax.set_title(f"{name}: {result.labels[c]}")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_outputs(out_dir: Path, stem: str, image: torch.Tensor, result: CorrelaxResult, source: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, breast_box=np.array(result.breast_box), labels=np.array(result.labels), **result.arrays())
    atomic_write_bytes(out_dir / f"{stem}.npz", buf.getvalue())
    grey = image[0].cpu().numpy()
    for c, label in enumerate(result.labels):
        atomic_write_bytes(out_dir / f"{stem}_{label}.png", overlay_png(grey, result, c, source.name))
    summary = {
        "source": str(source),
        "labels": list(result.labels),
        "breast_box": list(result.breast_box),
        "settings": result.settings.to_dict(),
        "passes": result.passes,
        "seconds": result.seconds,
        "peaks": peaks(result),
    }
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(summary, indent=1))


def read_method_maps(out_dir: Path, stem: str, settings: CorrelaxSettings, labels: tuple[str, ...]):
    """The CorRELAX maps a previous ``correlax explain`` wrote for ``stem``, by method name; None when there
    are none, or when they were made with other settings or labels (they would not be comparable)."""
    summary_path, npz_path = out_dir / f"{stem}.json", out_dir / f"{stem}.npz"
    if not (summary_path.exists() and npz_path.exists()):
        return None
    summary = json.loads(summary_path.read_text())
    if summary.get("settings") != settings.to_dict() or tuple(summary.get("labels", ())) != tuple(labels):
        log.info("%s: made with other settings or labels, not reused", summary_path)
        return None
    with np.load(npz_path) as data:
        return method_maps({k: data[k] for k in ("prediction", "corr_pred", "relax", "rise")})


@dataclass
class BatchReport:
    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, message)


def explain_files(
    files: list[Path],
    out_dir: Path,
    explainer: CorrelaxExplainer,
    load: Callable[[Path], tuple[torch.Tensor, tuple[int, int, int, int]]],
    progress: bool = True,
) -> BatchReport:
    """Explain each file not done yet; ``load(path) -> (image (3,H,W) in [0,1], breast box)``.
    A file that fails is logged and listed; the batch goes on."""
    report = BatchReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files, 1):
        stem = path.stem
        if (out_dir / f"{stem}.json").exists():
            report.skipped.append(path)
            continue
        try:
            image, box = load(path)
            result = explainer.explain(image, breast_box=box)
            write_outputs(out_dir, stem, image, result, path)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            msg = str(e) if str(path) in str(e) else f"{path}: {e}"
            log.error("%s", msg)
            report.failures.append((str(path), msg))
            continue
        report.done.append(path)
        if progress:
            print(f"[{i}/{len(files)}] {path.name}: {result.seconds:.1f} s, {result.passes} passes", flush=True)
    return report


def run_batch(
    inputs: Iterable[str | Path],
    out_dir: Path,
    checkpoint: Path,
    settings,
    devices: int = 1,
    num_nodes: int = 1,
    accelerator: str = "auto",
    progress: bool = True,
    spacing: float | None = None,
) -> BatchReport:
    """The whole ``correlax explain`` run: Lightning Fabric starts ``devices × num_nodes`` processes, each
    takes images[rank::world]; the returned report (on rank 0) lists every rank's failures. ``spacing`` (mm)
    stands in for files that state none (PNG, PGM), for models that resample to a pixel spacing."""
    from lightning.fabric import Fabric

    from correlax.io import read_image
    from correlax.models import load_checkpoint
    from correlax.preprocess import prepare

    world = devices * num_nodes
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp" if world > 1 else "auto")
    fabric.launch()
    files = collect_inputs(inputs)[fabric.global_rank :: fabric.world_size]
    model, info = load_checkpoint(checkpoint, map_location=fabric.device)
    preprocess = info.preprocess_settings

    def load(path: Path) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        mammogram = read_image(path)
        if mammogram.spacing is None and spacing is not None:
            mammogram = dataclasses.replace(mammogram, spacing=(spacing, spacing))
        prepared = prepare(mammogram, preprocess)
        return prepared.tensor(), prepared.breast_box

    report = explain_files(files, out_dir, CorrelaxExplainer(model, settings), load, progress)
    if fabric.world_size > 1:
        rank_file = out_dir / f".failures-rank{fabric.global_rank}.json"
        atomic_write_text(rank_file, json.dumps(report.failures))
        fabric.barrier()
        if fabric.global_rank == 0:
            report.failures = []
            for r in range(fabric.world_size):
                part = out_dir / f".failures-rank{r}.json"
                report.failures += [tuple(f) for f in json.loads(part.read_text())]
            fabric.barrier()
            for r in range(fabric.world_size):
                (out_dir / f".failures-rank{r}.json").unlink(missing_ok=True)
        else:
            fabric.barrier()
    return report
