"""README figure: synthetic mammograms (with their ground-truth boxes) next to a real mini-MIAS image.

    .venv/bin/python scripts/figure_synthetic.py [--mias ../shared/data/mini-mias] [--out docs/images/synthetic_vs_mias.png]

Top row: whole images; bottom row: close-ups of the lesions (the real mass of mdb028 first).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from correlax.fileio import atomic_write_bytes
from correlax.data.synthetic import MASS_KINDS, synth_image
from correlax.data.synthetic.anatomy import MAX_VALUE
from correlax.data.synthetic.dataset import CALCIFICATION, MASS

REPO = Path(__file__).resolve().parents[1]
MIAS_ID, MIAS_CENTRE, MIAS_RADIUS = "mdb028", (338, 1023 - 314), 56  # Info.txt: x, y from the bottom, radius
DISPLAY_HEIGHT = 640
# (view, laterality, density, lesions, which lesion the close-up shows) of the synthetic examples
EXAMPLES = [
    ("MLO", "L", 0.35, [(MASS, "spiculated"), (CALCIFICATION, None)], 0),
    ("CC", "R", 0.6, [(MASS, "round"), (CALCIFICATION, None)], 1),
    ("MLO", "R", 0.2, [(MASS, "lobulated")], 0),
    ("CC", "L", 0.75, [(MASS, "low_contrast"), (CALCIFICATION, None)], 0),
]
COLOURS = {MASS: "tab:red", CALCIFICATION: "tab:green"}


def _shrink(image: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    scale = height / image.shape[0]
    size = (round(image.shape[1] * scale), height)
    return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA), scale


def _close_up(image: np.ndarray, box: tuple[float, float, float, float], side: int = 200) -> np.ndarray:
    """A square crop around ``box`` (twice its size), resized to ``side`` pixels."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0, 24)
    top, left = int(max(0, cy - half)), int(max(0, cx - half))
    crop = image[top:int(cy + half), left:int(cx + half)].astype(np.float32)
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if crop.shape[0] > side else cv2.INTER_CUBIC)


def make_figure(mias_root: Path, out: Path, seed: int = 0, size: int = 1536) -> Path:
    mias_path = mias_root / "images" / f"{MIAS_ID}.png"
    real = cv2.imread(str(mias_path), cv2.IMREAD_GRAYSCALE)
    if real is None:
        raise FileNotFoundError(f"{mias_path}: cannot read the mini-MIAS image")
    cx, cy = MIAS_CENTRE
    real_box = (cx - MIAS_RADIUS, cy - MIAS_RADIUS, cx + MIAS_RADIUS, cy + MIAS_RADIUS)

    rng = np.random.default_rng(seed)
    images = [synth_image(rng, size, view, side, density, plan) for view, side, density, plan, _ in EXAMPLES]

    n = len(images) + 1
    fig, axes = plt.subplots(2, n, figsize=(2.9 * n, 6.4), gridspec_kw={"height_ratios": [1.6, 1]})
    shown, scale = _shrink(real, DISPLAY_HEIGHT)
    axes[0, 0].imshow(shown, cmap="gray", vmin=0, vmax=255)
    axes[0, 0].add_patch(plt.Circle((cx * scale, cy * scale), MIAS_RADIUS * scale, fill=False, ec="tab:red",
                                    ls="--", lw=1))
    axes[0, 0].set_title(f"real: mini-MIAS {MIAS_ID}\n(malignant circumscribed mass)", fontsize=8)
    axes[1, 0].imshow(_close_up(real, real_box), cmap="gray", vmin=0, vmax=255)
    axes[1, 0].set_title("real mass", fontsize=8)

    for i, image in enumerate(images, start=1):
        shown, scale = _shrink(image.pixels, DISPLAY_HEIGHT)
        axes[0, i].imshow(shown, cmap="gray", vmin=0, vmax=MAX_VALUE)
        for f in image.findings:
            x0, y0, x1, y1 = (v * scale for v in f.box)
            axes[0, i].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=COLOURS[f.category], lw=1))
        kinds = ", ".join(k.replace("_", " ") for _, k in EXAMPLES[i - 1][3] if k in MASS_KINDS)
        axes[0, i].set_title(f"synthetic {image.laterality}-{image.view}\n{kinds} mass" + (
            " + calcifications" if len(image.findings) > 1 else ""), fontsize=8)
        zoom = image.findings[EXAMPLES[i - 1][4]]
        axes[1, i].imshow(_close_up(image.pixels, zoom.box), cmap="gray", vmin=0, vmax=MAX_VALUE)
        label = "calcification cluster" if zoom.category == CALCIFICATION else f"{kinds} mass"
        axes[1, i].set_title(f"synthetic {label}", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle(f"Synthetic mammograms (size {size}, seed {seed}; red: Mass, green: Suspicious Calcification "
                 "boxes) next to a real one", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mias", type=Path, default=REPO.parent / "shared/data/mini-mias")
    parser.add_argument("--out", type=Path, default=REPO / "docs/images/synthetic_vs_mias.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=1536)
    args = parser.parse_args()
    out = make_figure(args.mias, args.out, args.seed, args.size)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
