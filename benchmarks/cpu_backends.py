"""The network's forward on this CPU through each backend, side by side in one run: which one CorRELAX should use.

Times ``BatchRunner.forward`` (what the engine calls) for PyTorch fp32 and bf16 autocast (channels-last), ONNX Runtime
fp32 and, when ``openvino`` is installed, OpenVINO fp32 and bf16, on the same ready batch, in alternating rounds so
that a change in the machine's load touches every backend alike. Each backend's probabilities are compared with
PyTorch fp32's on that batch.

    python benchmarks/cpu_backends.py --checkpoint runs/mias/R64/model.safetensors --out benchmarks/results/cpu-backends.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from correlax.explain.forward import BatchRunner
from correlax.explain.settings import CorrelaxSettings, RunSettings
from correlax.fileio import write_json
from correlax.provenance import provenance
from correlax.models import load_checkpoint

WAYS = {  # name: (backend, precision)
    "pytorch fp32 channels-last": ("torch", "fp32"),
    "pytorch bf16 autocast channels-last": ("torch", "bf16"),
    "onnxruntime fp32": ("onnx", "fp32"),
    "openvino fp32": ("openvino", "fp32"),
    "openvino bf16": ("openvino", "bf16"),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="per backend and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, info = load_checkpoint(args.checkpoint)
    window = info.input_size
    x = torch.rand(args.batch_size, 3, window, window, generator=torch.Generator().manual_seed(0))
    installed = {"torch", "onnx"} | ({"openvino"} if importlib.util.find_spec("openvino") else set())
    runners = {name: BatchRunner(model, CorrelaxSettings(window=window, stride=window // 8, precision=precision),
                                 RunSettings(batch_size=args.batch_size, backend=backend))
               for name, (backend, precision) in WAYS.items() if backend in installed}  # fmt: skip
    reference = runners["pytorch fp32 channels-last"].forward(x)[0]
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, runner in runners.items():
            runner.forward(x)  # warm
            n, t0 = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < args.seconds:
                runner.forward(x)
                n += args.batch_size
            rates[name].append(n / (time.perf_counter() - t0))
    result = {
        "provenance": provenance(),
        "config": {k: os.path.relpath(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "cpu": platform.processor() or platform.machine(),
        "window": window,
        "backbone": info.backbone,
        "load_average_1_5_15_min": os.getloadavg(),
        "passes_per_second": {name: {"median": float(np.median(r)), "rounds": r} for name, r in rates.items()},
        "max_abs_probability_difference_vs_pytorch_fp32": {
            name: float((runner.forward(x)[0] - reference).abs().max()) for name, runner in runners.items()
        },
        "notes": ["BatchRunner.forward, as the engine calls it; rounds alternate the backends on one ready batch of "
                  "random windows; medians over rounds"],
    }  # fmt: skip
    write_json(args.out, result)
    for name, r in result["passes_per_second"].items():
        diff = result["max_abs_probability_difference_vs_pytorch_fp32"][name]
        print(f"{name:<38} {r['median']:8.0f} passes/s   max |p diff| {diff:.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
