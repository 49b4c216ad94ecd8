"""The network's forward on this CPU through each backend, side by side in one run: which one CorRELAX should use.

Times PyTorch fp32 and bf16 autocast (channels-last), ONNX Runtime fp32 and, when ``openvino`` is installed, OpenVINO with fp32
inference and with its default precision, on the same ready batch, in alternating rounds so that a change in the
machine's load touches every backend alike. Each backend's logits are compared with PyTorch fp32's on that batch.

    python benchmarks/cpu_backends.py --checkpoint runs/mias/R64/model.safetensors --out benchmarks/results/cpu-backends.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from correlax.explain.backends import OnnxForward, export_onnx
from correlax.fileio import write_json
from correlax.models import load_checkpoint


def openvino_forwards(model: torch.nn.Module, window: int, threads: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """OpenVINO at fp32 and at its default inference precision; none when openvino is not installed."""
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    graph = core.read_model(model=export_onnx(model, window), weights=b"")  # ONNX bytes, no separate weights
    out = {}
    for name, hint in (("openvino fp32", {"INFERENCE_PRECISION_HINT": "f32"}), ("openvino default precision", {})):
        compiled = core.compile_model(graph, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", **hint})
        request = compiled.create_infer_request()
        out[name] = lambda x, r=request, o=compiled.outputs[0]: r.infer({0: x})[o]
    return out


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
    model.eval()
    window = info.input_size
    x = torch.rand(args.batch_size, 3, window, window, generator=torch.Generator().manual_seed(0))
    x_np = np.ascontiguousarray(x.numpy())
    torch_model = model.to(memory_format=torch.channels_last)
    onnx = OnnxForward(model, window, threads=args.threads)

    def pytorch(_: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch_model(x.contiguous(memory_format=torch.channels_last)).logits.numpy()

    def pytorch_bf16(_: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return torch_model(x.contiguous(memory_format=torch.channels_last)).logits.float().numpy()

    backends = {"pytorch fp32 channels-last": pytorch, "pytorch bf16 autocast channels-last": pytorch_bf16,
                "onnxruntime fp32": lambda _: onnx(x).logits.numpy(),
                **openvino_forwards(model, window, args.threads)}  # fmt: skip
    reference = pytorch(x_np)
    rates: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(args.rounds):
        for name, forward in backends.items():
            forward(x_np)  # warm
            n, t0 = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < args.seconds:
                forward(x_np)
                n += args.batch_size
            rates[name].append(n / (time.perf_counter() - t0))
    result = {
        "config": {k: os.path.relpath(v) if isinstance(v, Path) else v for k, v in vars(args).items()},  # no machine's paths
        "cpu": platform.processor() or platform.machine(),
        "window": window,
        "backbone": info.backbone,
        "load_average_1_5_15_min": os.getloadavg(),
        "passes_per_second": {name: {"median": float(np.median(r)), "rounds": r} for name, r in rates.items()},
        "max_abs_logit_difference_vs_pytorch": {name: float(np.abs(f(x_np) - reference).max()) for name, f in backends.items()},
        "notes": ["rounds alternate the backends on one ready batch of random windows; medians over rounds"],
    }
    write_json(args.out, result)
    for name, r in result["passes_per_second"].items():
        print(f"{name:<30} {r['median']:8.0f} passes/s   max |logit diff| {result['max_abs_logit_difference_vs_pytorch'][name]:.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
