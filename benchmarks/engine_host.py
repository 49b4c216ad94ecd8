"""The CorRELAX engine's own CPU work per forward pass, apart from the network: what keeps the engine below the bare
network's rate on a CPU.

Films are explained twice per round: with the network replaced by a stub that returns outputs of the right shapes at
no cost (what is timed is everything around the network: gathering windows, drawing and applying masks, the running
sums, the maps), and, for scale, the real network alone on ready batches of the same size. Both are process CPU
time over all threads, which a loaded machine inflates far less than wall time.

    python benchmarks/engine_host.py --checkpoint runs/mias/R64/model.safetensors \
        --images-npz runs/bench-data/film64.npz --out benchmarks/results/cpu-engine-host.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import read_saved_images  # noqa: E402

from correlax.explain.explainer import CorrelaxExplainer  # noqa: E402
from correlax.explain.settings import CorrelaxSettings, RunSettings  # noqa: E402
from correlax.fileio import write_json  # noqa: E402
from correlax.models import load_checkpoint  # noqa: E402
from correlax.models.contract import ClassifierOutput  # noqa: E402
from correlax.provenance import provenance  # noqa: E402


class FreeNetwork:
    """Stands in for the network's forward: fixed outputs of the real shapes, nudged by the input so that the
    masked views' statistics are not degenerate."""

    def __init__(self, n_labels: int, n_features: int, batch: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.logits = torch.randn(batch, n_labels, generator=g)
        self.features = torch.rand(batch, n_features, generator=g)

    def __call__(self, x: torch.Tensor) -> ClassifierOutput:
        n, labels = len(x), self.logits.shape[1]
        return ClassifierOutput(self.logits[:n] + x[:, 0, 0, :labels], self.features[:n])


def cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--images-npz", type=Path, required=True, help="prepared films (bench_engine.py --save-images)")
    ap.add_argument("--n-images", type=int, default=3)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--n-masks", type=int, default=32)
    ap.add_argument("--min-tissue", type=float, default=0.1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backend", default="onnx", choices=("torch", "onnx", "openvino"), help="the network timed for scale")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, info = load_checkpoint(args.checkpoint)
    window = info.input_size
    items = read_saved_images(args.images_npz, args.n_images)
    settings = CorrelaxSettings(window=window, stride=args.stride, n_masks=args.n_masks, min_tissue=args.min_tissue,
                                precision=args.precision)  # fmt: skip
    run = RunSettings(batch_size=args.batch_size, backend=args.backend, channels_last=args.backend == "torch")
    explainer = CorrelaxExplainer(model.eval(), settings, run=run)
    network = explainer.runner.fn
    batch = torch.rand(args.batch_size, 3, window, window, generator=torch.Generator().manual_seed(1))
    n_features = network(batch[:1]).features.shape[1]
    free = FreeNetwork(len(model.labels), n_features, args.batch_size)

    host, net = [], []
    for _ in range(args.rounds):
        explainer.runner.fn = free
        passes = explainer.runner.passes
        seconds = sum(cpu_seconds(lambda: explainer.explain(it["image"], breast_box=it["box"])) for it in items)
        host.append(seconds / (explainer.runner.passes - passes) * args.batch_size)
        explainer.runner.fn = network
        explainer.runner.forward(batch)  # warm
        reps = 20
        net.append(cpu_seconds(lambda: [explainer.runner.forward(batch) for _ in range(reps)]) / reps)
    host_ms, net_ms = 1e3 * min(host), 1e3 * min(net)
    report = {
        "provenance": provenance(),  # the commit this measures, among the rest
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "cpu": platform.processor() or platform.machine(),
        "window": window,
        "images": [it["id"] for it in items],
        "host_cpu_ms_per_batch": {"min": host_ms, "rounds": [1e3 * h for h in host]},
        "network_cpu_ms_per_batch": {"min": net_ms, "rounds": [1e3 * n for n in net]},
        "host_share_of_cpu": host_ms / (host_ms + net_ms),
        "notes": "CPU time of all threads per batch of batch_size passes, the least over rounds. host: "
                 "CorrelaxExplainer.explain on the films with the network stubbed out (everything the engine does "
                 "but the network, per-image maps included); network: BatchRunner.forward on a ready batch; "
                 "host_share_of_cpu = host / (host + network).",
    }
    write_json(args.out, report)
    print(f"host {host_ms:.2f} ms CPU per {args.batch_size} passes, network {net_ms:.2f} ms: "
          f"host share {report['host_share_of_cpu']:.3f}  -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
