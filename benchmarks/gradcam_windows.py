"""The Grad-CAM baseline's cost per batch of windows: ``GradCamExplainer`` against pytorch-grad-cam called plainly.

The plain way is what the library's README shows: a ``GradCAM`` call per class on the unfrozen network (a forward and a
full backward each), plus a forward for the windows' probabilities. ``GradCamExplainer.window_maps`` runs one forward
with the weights frozen and the graph cut at the target layer, then one backward per class through the head only.
Both are timed alternately on the same windows (a trained model's input size, random pixels), and the maps are
checked to be equal.

    python benchmarks/gradcam_windows.py --model RUN/model.safetensors --batch 32 --repeats 5 \\
        --out benchmarks/results/cpu-gradcam-windows.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from correlax.explain.baselines import GradCamExplainer
from correlax.fileio import write_json
from correlax.provenance import provenance
from correlax.models import load_checkpoint


def plain_gradcam(explainer: GradCamExplainer, windows: torch.Tensor) -> torch.Tensor:
    """(B, L, W, W) maps the way pytorch-grad-cam's README calls it: one call per class."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.no_grad():
        probs = torch.sigmoid(explainer.net(windows))
    maps = torch.empty(len(windows), len(explainer.labels), *windows.shape[-2:])
    with GradCAM(model=explainer.net, target_layers=[explainer.target_layer]) as cam:
        for c in range(len(explainer.labels)):
            grey = cam(input_tensor=windows, targets=[ClassifierOutputTarget(c)] * len(windows))
            maps[:, c] = torch.from_numpy(grey) * probs[:, c, None, None]
    return maps


def timed(fn, *args) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a trained model.safetensors")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = load_checkpoint(args.model, map_location="cpu")
    model.eval()
    size = info.input_size
    windows = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    explainer = GradCamExplainer(model, window=size, stride=size // 8)
    explainer.window_maps(windows), plain_gradcam(explainer, windows)  # warm-up
    ours, plain, equal = [], [], True
    for _ in range(args.repeats):
        t_ours, m_ours = timed(explainer.window_maps, windows)
        t_plain, m_plain = timed(plain_gradcam, explainer, windows)
        ours.append(t_ours), plain.append(t_plain)
        equal &= torch.equal(m_ours, m_plain)
    result = {
        "provenance": provenance(),
        "config": {"model": args.model, "input_size": size, "batch": args.batch, "repeats": args.repeats,
                   "threads": torch.get_num_threads(), "device": platform.machine(), "torch": torch.__version__,
                   "load_average_1_5_15_min": list(os.getloadavg())},  # fmt: skip
        "seconds_per_batch": {"gradcam_explainer": float(np.median(ours)), "pytorch_grad_cam_per_class": float(np.median(plain))},
        "speedup_median": float(np.median(np.array(plain) / np.array(ours))),
        "maps_equal": bool(equal),
    }
    write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
