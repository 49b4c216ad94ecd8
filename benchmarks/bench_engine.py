"""Benchmark of the CorRELAX engine against the plain way of running it, with the loss of every faster mode.

Side by side in one run, on the same model and images:
  (a) the plain way, as the reference runs it: one window at a time, 32 masks per forward pass, fp32;
      timed on a subset of windows and extrapolated to whole images (every window of the stride-S grid);
  (b) the engine in exact mode, fp32 and bf16 (and torch.compile with --compile);
  (c) each faster mode alone (--mode-precision), all of them together in bf16 ("fast"), and all but the
      coarser stride in bf16 ("fast-same-stride"); --modes picks some of them.
For every mode other than exact fp32: agreement of its maps with exact fp32 (Pearson r of the
maps inside the breast box, distance between their peaks, same Pointing Game outcome (reference
protocol) on the images' annotated classes).

    python benchmarks/bench_engine.py --out cpu.json                                      # CPU, tiny CNN
    python benchmarks/bench_engine.py --device cuda --backbone tf_efficientnetv2_s \\
        --window 256 --stride 32 --n-masks 1280 --scale 0.375 --out gpu.json             # GPU

Images: with --checkpoint, the boxed images of a --manifest split, pre-processed as the checkpoint says (a
trained network: the Pointing Game agreement means something); otherwise the first --n-images mini-MIAS
images with a located finding, resampled by --scale, and a randomly initialised --backbone (no weights are
downloaded: the numbers measure the arithmetic and the agreement between modes, not the findings).

    python benchmarks/bench_engine.py --checkpoint runs/demo/model/model.safetensors \\
        --manifest runs/demo/data/manifest.json --window 64 --stride 8 --n-masks 256 --out cpu-trained.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from correlax.data.records import Manifest
from correlax.evaluation.pointing_game import point_reference
from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.settings import RunSettings
from correlax.explain.explainer import tissue_mask
from correlax.explain.forward import BatchRunner
from correlax.explain.windows import WindowGrid, pad_crop, window_view
from correlax.labels import LABELS
from correlax.models import create_model, load_checkpoint
from correlax.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = {"prediction": 0.25, "corr_pred": 0.1}  # reference protocol
PLAIN_MASKS_PER_FORWARD = 32
NOTES = [
    (
        "plain way: one window at a time, 32 masks per forward, fp32; timed on plain.windows_timed windows "
        "per image spread over the grid and extrapolated to every window of the image (seconds_per_image)"
    ),
    "speed-ups are per image: plain seconds per image / mode seconds per image (same image, same run)",
    (
        "agreement: against exact-fp32 maps of the same image; Pearson r per class map on the breast pixels "
        "(Otsu mask; map_r_mean, used for the target) and on the whole breast box (map_r_box_mean), classes "
        "with a constant map skipped, mean over classes; peak distance between argmax points in the box; "
        "Pointing Game reference protocol (thresholds 0.25 / 0.1) on the annotated classes, both maps with the "
        "margin of exact fp32's stride (pointing_game_same_outcome, used for the target) and each map with its own "
        "stride's margin, as 'correlax pointing-game' scores a run (pointing_game_same_outcome_own_margin)"
    ),
    (
        "engine_vs_bare: the mode's passes per second over the images / its network alone (BatchRunner.forward on "
        "ready batches) timed for bare_network.min_seconds right after each image; bare_network.passes_per_second "
        "is the rate timed once before the images. network_time_share (CPU only): the share of the mode's seconds "
        "spent inside BatchRunner.forward, the rest being the engine's own work"
    ),
]
RANDOM_INIT_NOTE = "random-init network: maps are not meaningful as findings, only as agreement between modes"
TARGETS = {
    "exact_speedup_vs_plain": 4.0,  # on a GPU
    "fast_speedup_vs_plain": 50.0,
    "fast_map_r": 0.95,
    "fast_same_pointing_game": 0.95,
}
EXACT_FAST = ("exact-bf16-compile", "exact-bf16")  # the exact modes that count for the target, best first
FAST_MODES = ("tissue", "masks-se", "stride-x2", "fast", "fast-same-stride", "cli-fast", "cli-fast-onnx", "c2f-fast",
              "c2f-fast-onnx", "exact-openvino-bf16", "c2f-fast-openvino-bf16", "prediction-only", "prediction-only-openvino-bf16")  # fmt: skip
PREDICTION_ONLY_MODES = ("prediction-only", "prediction-only-openvino-bf16")  # no masks: no correlation map, only the prediction map's r counts
OPT_IN_MODES = ("exact-bf16-compile", "exact-onnx", "exact-fp32-torch", "cli-fast", "cli-fast-onnx", "c2f-fast", "c2f-fast-onnx",
                "exact-openvino-bf16", "c2f-fast-openvino-bf16", "exact-other-masks", *PREDICTION_ONLY_MODES)  # fmt: skip
# --targets film (CPU, mini-MIAS film) and fullsize (GPU, full-field image): seconds per image, agreement, engine rate
PER_IMAGE_TARGETS = {"seconds_per_image": 10.0, "map_r": 0.95, "same_pointing_game": 0.95, "engine_vs_bare": 0.9,
                     "exact_speedup_vs_plain": 6.0}  # fmt: skip


def compared_map_r(mode: str, summary: dict) -> float:
    """The map r a target reads: the lower of the prediction and correlation maps' (the prediction map's alone
    for a mode without masks, which makes no correlation map)."""
    maps = ("prediction",) if mode in PREDICTION_ONLY_MODES else ("prediction", "corr_pred")
    return min(summary[f"{m}_map_r_mean"] or 0 for m in maps)


def targets_met(summary: dict, device: torch.device) -> dict:
    """Each target against the modes this run measured (a target whose mode did not run is left out): the
    exact-mode speed-up on a GPU only, and the three fast-mode targets for each faster mode."""
    met: dict = {}
    exact = [summary[m]["speedup_vs_plain_per_image_mean"] for m in EXACT_FAST if m in summary]
    if exact and device.type == "cuda":
        met["exact_speedup_vs_plain"] = max(exact) >= TARGETS["exact_speedup_vs_plain"]
    for name in FAST_MODES:
        if name in summary:
            fast = summary[name]
            r = compared_map_r(name, fast)
            met[name] = {
                "fast_speedup_vs_plain": fast["speedup_vs_plain_per_image_mean"] >= TARGETS["fast_speedup_vs_plain"],
                "fast_map_r": r >= TARGETS["fast_map_r"],
                "fast_same_pointing_game": (fast["pointing_game_same_outcome"] or 0) >= TARGETS["fast_same_pointing_game"],
            }
    return met


def per_image_targets_met(summary: dict, device: torch.device, reference: str) -> dict:
    """--targets film / fullsize: each faster mode at <= 10 s per image with map r >= 0.95 and >= 95 % the same
    Pointing Game outcome against exact; the exact modes at >= 90 % of their bare network's rate (and, on a GPU,
    the best of them >= 6x the plain way)."""
    t = PER_IMAGE_TARGETS
    met: dict = {}
    exact = [m for m in (reference, "exact-onnx", "exact-bf16", "exact-bf16-compile", "exact-openvino-bf16") if m in summary]
    met["engine_vs_bare"] = {m: (summary[m]["engine_vs_bare"] or 0) >= t["engine_vs_bare"] for m in exact}
    if device.type == "cuda":
        met["exact_speedup_vs_plain"] = max(summary[m]["speedup_vs_plain_per_image_mean"] for m in exact) >= t["exact_speedup_vs_plain"]
    for name in FAST_MODES:
        if name in summary:
            fast = summary[name]
            r = compared_map_r(name, fast)
            met[name] = {
                "seconds_per_image": fast["seconds_per_image_mean"] <= t["seconds_per_image"],
                "map_r": r >= t["map_r"],
                "same_pointing_game": (fast["pointing_game_same_outcome"] or 0) >= t["same_pointing_game"],
            }
    met["some_fast_mode_meets_all"] = any(all(met[k].values()) for k in FAST_MODES if k in met and k not in PREDICTION_ONLY_MODES)
    met["prediction_only_mode_meets_all"] = any(all(met[k].values()) for k in PREDICTION_ONLY_MODES if k in met)
    return met


class ForwardClock:
    """Time spent in ``runner.forward`` (the network, as the engine calls it), on a CPU only: on CUDA the forward
    returns before the device is done, and timing it would need a synchronisation that changes the engine."""

    def __init__(self, runner: BatchRunner) -> None:
        self.seconds = 0.0
        self._forward = runner.forward
        if runner.device.type == "cpu":
            runner.forward = self

    def __call__(self, x: torch.Tensor):
        t0 = time.perf_counter()
        try:
            return self._forward(x)
        finally:
            self.seconds += time.perf_counter() - t0


def bare_rate(runner: BatchRunner, window: int, min_seconds: float) -> float:
    """Passes per second of the network alone as the engine calls it (``BatchRunner.forward``) on full batches of
    random windows, already on the device: no window gathering, masks or statistics."""
    x = torch.rand(runner.batch_size, 3, window, window, device=runner.device)
    runner.forward(x)  # warm-up
    sync(runner.device)
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < min_seconds:
        runner.forward(x)
        n += len(x)
    sync(runner.device)
    return n / (time.perf_counter() - t0)


def load_items(manifest, records, preprocess, n: int, labels: tuple[str, ...]) -> list[dict]:
    """The first n boxed images of ``records``, pre-processed: float tensor, breast box, Otsu tissue mask,
    boxes per label."""
    # imported here: localisation needs captum and grad-cam, which the GPU machine (reading --images-npz) lacks
    from correlax.evaluation.localisation import boxed_records, boxes_in_prepared
    from correlax.preprocess import load_prepared

    out = []
    for record in boxed_records(records, labels)[:n]:
        prepared = load_prepared(manifest.resolve(record), preprocess, record.spacing)
        image = prepared.tensor()
        out.append({"id": record.image_id, "image": image, "box": prepared.breast_box,
                    "boxes": boxes_in_prepared(record, prepared), "tissue": tissue_mask(image).numpy()})
    return out


def mias_items(data: Path, n: int, scale: float, labels: tuple[str, ...]) -> list[dict]:
    """The first n mini-MIAS images with located findings, resampled by ``scale`` (mini-MIAS: 0.2 mm pixels)."""
    from correlax.data.mias import load_mias
    from correlax.preprocess import PreprocessSettings

    manifest = load_mias(data)
    return load_items(manifest, manifest.records, PreprocessSettings(target_spacing=0.2 / scale), n, labels)


def save_images(items: list[dict], path: Path) -> None:
    """Prepared images in one .npz, for a machine without the data set (or without pydicom)."""
    arrays = {f"image{i}": (it["image"] * 255).round().byte().numpy() for i, it in enumerate(items)}
    arrays |= {f"tissue{i}": it["tissue"] for i, it in enumerate(items)}
    meta = [{"id": it["id"], "box": list(it["box"]), "boxes": it["boxes"]} for it in items]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def read_saved_images(path: Path, n: int) -> list[dict]:
    z = np.load(path)
    meta = json.loads(str(z["meta"]))[:n]
    return [
        {"id": m["id"], "image": torch.from_numpy(z[f"image{i}"]).float() / 255, "box": tuple(m["box"]),
         "boxes": {k: [tuple(b) for b in v] for k, v in m["boxes"].items()}, "tissue": z[f"tissue{i}"]}
        for i, m in enumerate(meta)
    ]


def windows_run(result) -> dict:
    """Windows that ran and their masks on average (without masks: one pass per window that ran)."""
    if result.settings.prediction_only:
        return {"windows_run": result.passes, "masks_per_window_run_mean": 0.0}
    ran = result.window_masks > 0
    return {"windows_run": int(ran.sum()), "masks_per_window_run_mean": float(result.window_masks[ran].mean())}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_way(model, image: torch.Tensor, box, settings: CorrelaxSettings, n_windows: int, device) -> dict:
    """The reference's way: per window one unmasked pass, then its masks 32 per forward, fp32, then the
    statistics from the kept per-mask values. Timed on n_windows windows spread over the grid."""
    grid = WindowGrid(box, settings.window, settings.stride)
    windows = window_view(pad_crop(image.to(device), grid), grid)
    gh, gw = grid.shape
    picks = np.linspace(0, gh * gw - 1, min(n_windows, gh * gw)).round().astype(int)
    gen = torch.Generator(device=device).manual_seed(0)
    k, w = settings.n_masks, settings.window
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for idx in picks:
            x = windows[idx // gw, idx % gw][None].contiguous()
            out = model(x)
            p, z = torch.sigmoid(out.logits), out.features
            probs, feats = [], []
            for k0 in range(0, k, PLAIN_MASKS_PER_FORWARD):
                n = min(PLAIN_MASKS_PER_FORWARD, k - k0)
                cells = (torch.rand(n, 1, settings.grid, settings.grid, generator=gen, device=device) < 0.5).float()
                masks = F.interpolate(cells, size=(w, w), mode="bilinear", align_corners=False)
                o = model(x * masks)
                probs.append(torch.sigmoid(o.logits))
                feats.append(o.features)
            d = F.cosine_similarity(z, torch.cat(feats))
            q = F.cosine_similarity(p, torch.cat(probs))
            torch.corrcoef(torch.cat([d[None], q[None], torch.cat(probs).T]))  # the window's statistics
    sync(device)
    seconds = time.perf_counter() - t0
    per_window = seconds / len(picks)
    return {
        "windows_timed": len(picks),
        "windows_per_image": gh * gw,
        "seconds_per_window": per_window,
        "seconds_per_image": per_window * gh * gw,
        "passes_per_second": len(picks) * (k + 1) / seconds,
        "extrapolated": bool(len(picks) < gh * gw),
    }


def map_r(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _point(p) -> dict:
    return {"x": int(p.x), "y": int(p.y), "value": float(p.value), "hit": bool(p.hit)}


def agreement(result, exact, item: dict, labels: tuple[str, ...]) -> dict:
    """Per class map: Pearson r on the breast pixels (``r_mean``, the target's measure: skipped background
    windows are 0 by design) and on the whole breast box (``r_box_mean``), and the distance between the
    peaks in the box; the same Pointing Game outcome on the annotated classes."""
    x0, y0, x1, y1 = exact.breast_box
    breast = item["tissue"][y0:y1, x0:x1]
    out = {}
    for name in ("prediction", "corr_pred", "rise"):
        if getattr(result, name) is None:  # a mode without masks makes the prediction map alone
            out[name] = {"r_mean": None, "r_min": None, "r_box_mean": None, "peak_distance_px_mean": None}
            continue
        rs, rs_box, dists = [], [], []
        for c in range(len(labels)):
            a = getattr(result, name)[c, y0:y1, x0:x1]
            b = getattr(exact, name)[c, y0:y1, x0:x1]
            for values, (u, v) in ((rs, (a[breast], b[breast])), (rs_box, (a, b))):
                r = map_r(u, v)
                if r is not None:
                    values.append(r)
            pa = np.unravel_index(np.argmax(a), a.shape)
            pb = np.unravel_index(np.argmax(b), b.shape)
            dists.append(math.dist(pa, pb))
        out[name] = {"r_mean": float(np.mean(rs)) if rs else None, "r_min": min(rs) if rs else None,
                     "r_box_mean": float(np.mean(rs_box)) if rs_box else None,
                     "peak_distance_px_mean": float(np.mean(dists))}
    flips, own_flips, total = [], 0, 0
    for name, threshold in THRESHOLDS.items():
        if getattr(result, name) is None:
            continue
        for label, boxes in item["boxes"].items():
            c = labels.index(label)
            ref = point_reference(getattr(exact, name)[c], boxes, exact.breast_box, exact.settings.stride, threshold)
            mode = point_reference(getattr(result, name)[c], boxes, exact.breast_box, exact.settings.stride, threshold)
            total += 1
            if mode.hit != ref.hit:
                flips.append({"map": name, "label": label, "exact": _point(ref), "mode": _point(mode)})
            # as 'correlax pointing-game' scores a run: the margin is that run's own stride
            own = point_reference(getattr(result, name)[c], boxes, exact.breast_box, result.settings.stride, threshold).hit
            own_flips += own != ref.hit
    out["pointing_game_same"] = 1 - len(flips) / total if total else None
    out["pointing_game_same_own_margin"] = 1 - own_flips / total if total else None
    out["pointing_game_compared"] = total
    out["pointing_game_flips"] = flips  # the points of both where the outcomes differ (margin: exact's stride)
    return out


def modes(base: CorrelaxSettings, run: RunSettings, args) -> dict[str, tuple[CorrelaxSettings, RunSettings]]:
    """(method settings, run settings) of every mode asked for (all by default); exact fp32 first, the
    agreement's reference."""
    tissue = {"min_tissue": args.min_tissue}
    masks = {"se_tol": args.se_tol, "mask_round": args.mask_round}
    stride = {"stride": base.stride * 2}
    coarse = {"coarse_stride": base.stride * args.coarse_factor, "refine_prediction": args.refine_prediction,
              "refine_corr": args.refine_corr}  # fmt: skip
    alone = base.replace(precision=args.mode_precision)
    onnx = run.replace(backend="onnx")
    openvino = run.replace(backend="openvino")  # bf16 on a CPU with bf16 units
    known = {
        "exact-fp32": lambda: (base, run),
        "exact-fp32-torch": lambda: (base, run),  # with --reference-backend onnx: the torch path beside it
        "exact-bf16": lambda: (base.replace(precision="bf16"), run),
        "exact-fp32-nchw": lambda: (base, run.replace(channels_last=False)),  # what channels-last buys
        "tissue": lambda: (alone.replace(**tissue), run),
        "masks-se": lambda: (alone.replace(**masks), run),
        "stride-x2": lambda: (alone.replace(**stride), run),
        "fast": lambda: (base.replace(precision="bf16", **tissue, **masks, **stride), run),
        "fast-same-stride": lambda: (base.replace(precision="bf16", **tissue, **masks), run),
        "exact-bf16-compile": lambda: (base.replace(precision="bf16"), run.replace(compile=True)),
        "exact-onnx": lambda: (base, onnx),
        "cli-fast": lambda: (alone.replace(**masks), run),  # 'correlax explain --fast' (bf16 on a GPU: --mode-precision bf16)
        "cli-fast-onnx": lambda: (base.replace(**masks), onnx),
        "c2f-fast": lambda: (alone.replace(**masks, **tissue, **coarse), run),
        "c2f-fast-onnx": lambda: (base.replace(**masks, **tissue, **coarse), onnx),
        "exact-openvino-bf16": lambda: (base.replace(precision="bf16"), openvino),
        "c2f-fast-openvino-bf16": lambda: (base.replace(precision="bf16", **masks, **tissue, **coarse), openvino),
        # no masks: one pass per window, every window; the prediction map as exact makes it, nothing else
        "prediction-only": lambda: (alone.replace(n_masks=0), run),
        "prediction-only-openvino-bf16": lambda: (base.replace(precision="bf16", n_masks=0), openvino),
        # the reference's own arithmetic with masks drawn from the next seed: how far exact agrees with itself, the
        # ceiling of any mode's agreement on a map that the masks' noise dominates (the correlation at small K)
        "exact-other-masks": lambda: (base.replace(seed=base.seed + 1), run.replace(backend=args.reference_backend)),
    }
    wanted = list(args.modes or [name for name in known if name not in OPT_IN_MODES or (args.compile and name == "exact-bf16-compile")])
    unknown = set(wanted) - set(known)
    if unknown:
        raise SystemExit(f"unknown --modes {sorted(unknown)}; known: {', '.join(known)}")
    if args.compile and "exact-bf16-compile" not in wanted:
        wanted.append("exact-bf16-compile")
    made = {name: make() for name, make in known.items() if name == "exact-fp32" or name in wanted}
    made["exact-fp32"] = (base, run.replace(backend=args.reference_backend))
    return made


def summarise(rows: list[dict], bare: dict[str, float] | None = None) -> dict:
    """Totals per mode over the images; speed-ups per image against the plain way; with ``bare`` (passes per second
    of each mode's network alone) the engine's rate against it."""
    out = {}
    for mode in rows[0]["modes"]:
        secs = [r["modes"][mode]["seconds"] for r in rows]
        passes = [r["modes"][mode]["passes"] for r in rows]
        plain_secs = [r["plain_seconds_per_image"] for r in rows]
        speedups = [p / s for p, s in zip(plain_secs, secs)]
        s = {
            "seconds_per_image_mean": float(np.mean(secs)),
            "passes_per_second": float(sum(passes) / sum(secs)),
            "passes_per_image_mean": float(np.mean(passes)),
            "windows_run_fraction": float(np.mean([r["modes"][mode]["windows_run"] / r["modes"][mode]["windows"] for r in rows])),
            "masks_per_window_run_mean": float(np.mean([r["modes"][mode]["masks_per_window_run_mean"] for r in rows])),
            "speedup_vs_plain_per_image_mean": float(np.mean(speedups)),
            "speedup_vs_plain_per_image_min": float(np.min(speedups)),
        }
        agree = [r["modes"][mode].get("agreement") for r in rows]
        if agree[0] is not None:
            for name in ("prediction", "corr_pred", "rise"):
                rs = [a[name]["r_mean"] for a in agree if a[name]["r_mean"] is not None]
                rs_box = [a[name]["r_box_mean"] for a in agree if a[name]["r_box_mean"] is not None]
                s[f"{name}_map_r_mean"] = float(np.mean(rs)) if rs else None
                s[f"{name}_map_r_box_mean"] = float(np.mean(rs_box)) if rs_box else None
                s[f"{name}_map_r_min_over_images"] = float(np.min(rs)) if rs else None
                s[f"{name}_images_with_r_ge_0.95"] = float(np.mean([r >= 0.95 for r in rs])) if rs else None
                dists = [a[name]["peak_distance_px_mean"] for a in agree if a[name]["peak_distance_px_mean"] is not None]
                s[f"{name}_peak_distance_px_mean"] = float(np.mean(dists)) if dists else None
            for key, name in (("pointing_game_same", "pointing_game_same_outcome"),
                              ("pointing_game_same_own_margin", "pointing_game_same_outcome_own_margin")):
                pg = [a[key] for a in agree if a[key] is not None]
                s[name] = float(np.mean(pg)) if pg else None
        if bare:
            # timed after each image (``bare_passes_per_second`` of the image's entry); the rate before the images
            # where the entries lack it
            per_image = [r["modes"][mode].get("bare_passes_per_second") for r in rows]
            s["bare_passes_per_second"] = float(np.mean(per_image)) if None not in per_image else bare[mode]
            s["engine_vs_bare"] = s["passes_per_second"] / s["bare_passes_per_second"]
        in_network = [r["modes"][mode].get("network_seconds") for r in rows]
        if None not in in_network:
            s["network_time_share"] = float(sum(in_network) / sum(secs))
        out[mode] = s
    return out


VINDR_WINDOWS = 4700  # windows of a VinDr-Mammo image at W=256, S=32 (method §10)


def vindr_estimate(rows: list[dict], explainers: dict) -> dict:
    """Seconds per VinDr-size image at this run's throughput, every window with all masks (exact modes)."""
    k = rows[0]["modes"]["exact-fp32"]["passes"] / rows[0]["modes"]["exact-fp32"]["windows"]  # K + 1
    plain = float(np.mean([r["plain"]["seconds_per_window"] for r in rows]))
    out = {"windows": VINDR_WINDOWS, "passes_per_window": k, "plain_seconds": plain * VINDR_WINDOWS}
    for name in ("exact-fp32", "exact-bf16", "exact-bf16-compile"):
        if name in rows[0]["modes"]:
            secs = sum(r["modes"][name]["seconds"] for r in rows)
            rate = sum(r["modes"][name]["passes"] for r in rows) / secs
            out[f"{name}_seconds"] = VINDR_WINDOWS * k / rate
    return out


def make_report(args, device: torch.device, explainers: dict, rows: list[dict], wall: float, bare: dict) -> dict:
    report = {
        "provenance": provenance(),
        "config": {k: os.path.relpath(v) if isinstance(v, Path) else v for k, v in vars(args).items()},  # no machine's paths
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,  # PyTorch's default: fp32 convolutions use TF32 on GPU
        "batch_size": {name: e.runner.batch_size for name, e in explainers.items()},
        "modes": {name: {**e.settings.to_dict(), **e.run.to_dict()} for name, e in explainers.items()},
        "notes": NOTES if args.checkpoint else [*NOTES, RANDOM_INIT_NOTE],
        "n_images": len(rows),
        "load_average_1_5_15_min": os.getloadavg(),  # the CPU is shared: other jobs ran beside this one
        "bare_network": {"min_seconds": args.bare_seconds, "passes_per_second": bare},
        "summary": summarise(rows, bare),
        "vindr_estimate": vindr_estimate(rows, explainers),
        "images": rows,
        "wall_seconds": wall,
    }
    if args.targets == "engine":
        report["targets"] = TARGETS
        report["targets_met"] = targets_met(report["summary"], device)
    else:
        report["targets"] = PER_IMAGE_TARGETS
        report["targets_met"] = per_image_targets_met(report["summary"], device, "exact-fp32")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backbone", default="tiny", help="a correlax preset or timm model name (random init)")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained model (correlax train) instead of --backbone; its images come from --manifest")
    ap.add_argument("--manifest", type=Path, default=None, help="images of --checkpoint: a correlax manifest JSON")
    ap.add_argument("--split", default="test", help="the --manifest split to take images from (default: test)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/mini-mias")
    ap.add_argument("--n-images", type=int, default=6)
    ap.add_argument("--images-npz", type=Path, default=None, help="prepared images saved by --save-images")
    ap.add_argument("--save-images", action="store_true", help="only prepare the images into --images-npz")
    ap.add_argument("--scale", type=float, default=0.125, help="resampling of the 1024x1024 mini-MIAS images")
    ap.add_argument("--window", type=int, default=None, help="default: the checkpoint's input size, else 32")
    ap.add_argument("--stride", type=int, default=4)
    ap.add_argument("--n-masks", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=None, help="default: fitted to the device")
    ap.add_argument("--plain-windows", type=int, default=8, help="windows per image timed the plain way")
    ap.add_argument("--min-tissue", type=float, default=0.2)
    ap.add_argument("--se-tol", type=float, default=0.1)
    ap.add_argument("--mask-round", type=int, default=32)
    ap.add_argument("--mode-precision", default="fp32", help="precision of the single faster modes")
    ap.add_argument("--coarse-factor", type=int, default=2, help="coarse-to-fine modes: coarse stride / stride")
    ap.add_argument("--refine-prediction", type=float, default=0.9,
                    help="coarse-to-fine: refine from this fraction of a class's range of coarse predictions")
    ap.add_argument("--refine-corr", type=float, default=0.8,
                    help="coarse-to-fine: refine from this fraction of a class's range of coarse |correlation|")
    ap.add_argument("--reference-backend", choices=("torch", "onnx"), default="torch",
                    help="the backend of exact-fp32, the agreement's reference (onnx: the same fp32 arithmetic, faster on a CPU)")
    ap.add_argument("--bare-only", type=lambda v: v.split(","), default=None,
                    help="comma-separated modes whose network alone is timed, not run on the images")
    ap.add_argument("--bare-seconds", type=float, default=3.0, help="time each mode's network alone for this long")
    ap.add_argument("--targets", choices=("engine", "film", "fullsize"), default="engine",
                    help="engine: speed-ups against the plain way; film, fullsize: seconds per image, agreement and"
                         " engine rate against the bare network")
    ap.add_argument("--target-spacing", type=float, default=None,
                    help="with --manifest and no --checkpoint: resample to this spacing (mm; default: native)")
    ap.add_argument("--compile", action="store_true", help="also time exact bf16 with torch.compile")
    ap.add_argument("--modes", type=lambda v: v.split(","), default=None,
                    help="comma-separated modes to run (default: all); exact-fp32, the reference of the agreement, always runs")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds: start no new image after this")
    ap.add_argument("--warmup", choices=("window", "image"), default="window",
                    help="untimed warm-up on one window, or on the whole first image (every batch shape of the"
                         " mask-stopping modes autotuned and compiled before timing: a long batch's steady state)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if not args.out and not args.save_images:
        ap.error("--out is required")
    if args.save_images and not args.images_npz:
        ap.error("--save-images needs --images-npz")
    if args.checkpoint and not args.manifest and not (args.images_npz and args.images_npz.exists()):
        ap.error("--checkpoint needs --manifest, or --images-npz saved with the same checkpoint")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.checkpoint:
        model, info = load_checkpoint(args.checkpoint)
        args.window = args.window or info.input_size
        args.backbone = info.backbone  # recorded in the report's config
    else:
        model = create_model(args.backbone, LABELS, pretrained=False)
        args.window = args.window or 32
    model = model.to(device).eval()
    labels = tuple(model.labels)
    base = CorrelaxSettings(window=args.window, stride=args.stride, n_masks=args.n_masks)
    run = RunSettings(batch_size=args.batch_size)
    if args.images_npz and args.images_npz.exists() and not args.save_images:
        items = read_saved_images(args.images_npz, args.n_images)
    elif args.manifest:
        from correlax.preprocess import PreprocessSettings

        manifest = Manifest.load(args.manifest)
        preprocess = info.preprocess_settings if args.checkpoint else PreprocessSettings(target_spacing=args.target_spacing)
        items = load_items(manifest, manifest.split(args.split), preprocess, args.n_images, labels)
    else:
        items = mias_items(args.data, args.n_images, args.scale, labels)
    if not items:
        raise SystemExit("no image with a box of the model's labels to benchmark (--manifest split, --images-npz, --data)")
    if args.save_images:
        save_images(items, args.images_npz)
        print(f"saved {len(items)} prepared images to {args.images_npz}")
        return 0
    plain_model = copy.deepcopy(model)  # the explainers switch ``model`` to channels-last; this one stays NCHW
    explainers = {name: CorrelaxExplainer(model if r.channels_last else plain_model, s, run=r)
                  for name, (s, r) in modes(base, run, args).items()}  # fmt: skip
    # warm-up (cuDNN autotuning, compilation), untimed
    warm = items[0]
    x0, y0, _, _ = warm["box"]
    warm_box = warm["box"] if args.warmup == "image" else (x0, y0, x0 + 1, y0 + 1)
    for e in explainers.values():
        e.explain(warm["image"], breast_box=warm_box)
    plain_way(plain_model, warm["image"], warm["box"], base, 1, device)
    bare = {name: bare_rate(e.runner, args.window, args.bare_seconds) for name, e in explainers.items()}
    if args.bare_only:  # only the network's rate of these modes: too slow here to run on the images
        only = modes(base, run, argparse.Namespace(**{**vars(args), "modes": args.bare_only, "compile": False}))
        for name in args.bare_only:
            bare[f"{name} (bare only)"] = bare_rate(BatchRunner(model, *only[name]), args.window, args.bare_seconds)
    print("bare network, passes/s:", {k: round(v, 1) for k, v in bare.items()}, flush=True)
    clocks = {name: ForwardClock(e.runner) for name, e in explainers.items()}
    rows: list[dict] = []
    t_start = time.perf_counter()
    for item in items:
        if args.time_budget and rows and time.perf_counter() - t_start > args.time_budget:
            print(f"time budget reached after {len(rows)} images", flush=True)
            break
        plain = plain_way(plain_model, item["image"], item["box"], base, args.plain_windows, device)
        row = {"id": item["id"], "shape": list(item["image"].shape[1:]), "breast_box": list(item["box"]),
               "plain": plain, "plain_seconds_per_image": plain["seconds_per_image"], "modes": {}}
        exact = None
        for name, explainer in explainers.items():
            in_network = clocks[name].seconds
            result = explainer.explain(item["image"], breast_box=item["box"])
            in_network = clocks[name].seconds - in_network
            # the network alone right after, on the same CPU state: the engine's rate is judged side by side
            bare_now = bare_rate(explainer.runner, args.window, args.bare_seconds)
            entry = {"seconds": result.seconds, "passes": result.passes, "bare_passes_per_second": bare_now,
                     "network_seconds": in_network if device.type == "cpu" else None,
                     "windows": int(result.window_masks.size), **windows_run(result)}
            if exact is None:
                exact = result
            else:
                entry["agreement"] = agreement(result, exact, item, labels)
            row["modes"][name] = entry
        rows.append(row)
        print(item["id"], {k: round(v["seconds"], 2) for k, v in row["modes"].items()}, "plain", round(plain["seconds_per_image"], 2), flush=True)
        report = make_report(args, device, explainers, rows, time.perf_counter() - t_start, bare)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))  # after every image: a cut-off run keeps its results
    print(json.dumps(report["summary"], indent=1))
    print("targets met:", report["targets_met"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
