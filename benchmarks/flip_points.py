"""Where the Pointing Game flips of a bench_engine.py report lie: in the breast or not, and how much breast
the windows over each point hold (the window skip leaves out those below ``min_tissue``).

    python benchmarks/flip_points.py benchmarks/results/gpu-h200-trained-all.json runs/bench-data/mias-trained.npz

The images are the report's own, saved by ``bench_engine.py --save-images``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from correlax.explain.windows import WindowGrid, window_fraction

sys.path.insert(0, str(Path(__file__).parent))
from bench_engine import read_saved_images  # noqa: E402


def covering_fractions(tissue: np.ndarray, grid: WindowGrid, x: int, y: int) -> np.ndarray:
    """Breast fraction of every window of ``grid`` whose square contains pixel (x, y)."""
    fractions = window_fraction(torch.from_numpy(tissue), grid).numpy()
    x0, y0, _, _ = grid.box
    centres_y = y0 + grid.stride * np.arange(fractions.shape[0])  # window (i, j) is centred on the crop's (i S, j S)
    centres_x = x0 + grid.stride * np.arange(fractions.shape[1])
    half = grid.window // 2
    rows, cols = np.abs(centres_y - y) < half, np.abs(centres_x - x) < half
    return fractions[np.ix_(rows, cols)].ravel()


def describe_flips(report: dict, items: dict[str, dict]) -> list[dict]:
    config = report["config"]
    min_tissue = config["min_tissue"]
    out = []
    for image in report["images"]:
        item = items[image["id"]]
        for mode, entry in image["modes"].items():
            stride = report["modes"][mode]["stride"]
            for flip in entry.get("agreement", {}).get("pointing_game_flips", []):
                row = {"image": image["id"], "faster_mode": mode, "map": flip["map"], "label": flip["label"]}
                for side in ("exact", "mode"):
                    p = flip[side]
                    grid = WindowGrid(tuple(image["breast_box"]), config["window"], stride if side == "mode" else config["stride"])
                    fractions = covering_fractions(item["tissue"], grid, p["x"], p["y"])
                    row[side] = {**p, "in_breast": bool(item["tissue"][p["y"], p["x"]]), "windows": int(fractions.size),
                                 f"windows_below_{min_tissue}": int((fractions < min_tissue).sum())}  # fmt: skip
                out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="a bench_engine.py JSON")
    ap.add_argument("images_npz", type=Path, help="its images, saved by bench_engine.py --save-images")
    args = ap.parse_args(argv)
    report = json.loads(args.report.read_text())
    items = {it["id"]: it for it in read_saved_images(args.images_npz, 10**6)}
    missing = {im["id"] for im in report["images"]} - set(items)
    if missing:
        raise SystemExit(f"{args.images_npz}: no saved image for {sorted(missing)} of {args.report}")
    print(json.dumps(describe_flips(report, items), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
