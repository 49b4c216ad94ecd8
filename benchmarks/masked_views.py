"""Are CorRELAX's masked views out of distribution for a classifier? P_c of masked against unmasked views.

One window (the model's input size) centred on each boxed lesion and a few on the breast tissue of normal
images; each window is run unmasked and under K CorRELAX masks (the explainer's mask generator and fill)
and, per window group (lesion class, or normal) and fill, we report the mean P_c unmasked and over the
masks, the fraction of windows where masking raises P_c, and the correlation r(d, P_c) that CorrPred uses.

    python benchmarks/masked_views.py --model RUN/model.safetensors --data MANIFEST --split test \\
        --masks 64 --fills black mean blur --out benchmarks/results/masked-views-NAME.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from correlax.crops import extract_crop
from correlax.data.records import Manifest
from correlax.masks import apply_masks, mask_grids, upsample
from correlax.fileio import write_json
from correlax.provenance import provenance
from correlax.io import ImageReadError
from correlax.labels import NO_FINDING
from correlax.models import load_checkpoint
from correlax.preprocess import load_prepared
from correlax.settings import MASK_FILLS

log = logging.getLogger(__name__)
NORMAL = "normal"


def lesion_windows(image: np.ndarray, boxes: list[tuple[str, tuple]], size: int) -> list[tuple[str, np.ndarray]]:
    """(label, (size, size, 3) window centred on the box), zero outside the image."""
    out = []
    for label, (x0, y0, x1, y1) in boxes:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        out.append((label, extract_crop(image, (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), size)))
    return out


def tissue_windows(image: np.ndarray, breast_box: tuple, size: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``n`` windows centred on breast pixels, each at least half breast (pixels above 0)."""
    x0, y0, x1, y1 = breast_box
    ys, xs = np.nonzero(image[y0:y1, x0:x1, 0] > 0)
    out = []
    for i in rng.permutation(len(xs))[: 50 * n]:
        cx, cy = xs[i] + x0 + 0.5, ys[i] + y0 + 0.5
        window = extract_crop(image, (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2), size)
        if (window[..., 0] > 0).mean() >= 0.5:
            out.append(window)
        if len(out) == n:
            break
    return out


@torch.no_grad()
def masked_view_stats(
    model, windows: torch.Tensor, n_masks: int, fill: str, seed: int = 0, grid: int = 8, keep_prob: float = 0.5,
    batch: int = 256,
) -> dict[str, np.ndarray]:
    """Per window (N, 3, W, W) in [0, 1]: unmasked P (N, L), mean P over the masks (N, L) and r(d, P_c) (N, L),
    with window i masked by ``mask_grids(seed, i, k)`` as the explainer draws them."""
    n, _, size, _ = windows.shape
    rows: dict[str, list[torch.Tensor]] = {"p_unmasked": [], "p_masked": [], "r": []}
    per = max(1, batch // n_masks)  # windows per forward batch of their masked views
    for a in range(0, n, per):
        ids = torch.arange(a, min(n, a + per))
        plain = model(windows[ids])
        p0, z0 = torch.sigmoid(plain.logits.double()), plain.features.double()
        wid, kid = ids.repeat_interleave(n_masks), torch.arange(n_masks).repeat(len(ids))
        masks = upsample(mask_grids(seed, wid, kid, grid, keep_prob), size)
        out = model(apply_masks(windows[wid], masks, fill, grid))
        pk = torch.sigmoid(out.logits.double()).view(len(ids), n_masks, -1)
        d = F.cosine_similarity(z0.repeat_interleave(n_masks, 0), out.features.double(), dim=1).view(len(ids), n_masks)
        dc, pc = d - d.mean(1, keepdim=True), pk - pk.mean(1, keepdim=True)
        denom = torch.sqrt((dc**2).sum(1)[:, None] * (pc**2).sum(1))
        r = torch.where(denom > 1e-12, (dc[:, :, None] * pc).sum(1) / denom.clamp(min=1e-300), 0.0)
        for key, value in (("p_unmasked", p0), ("p_masked", pk.mean(1)), ("r", r)):
            rows[key].append(value)
    return {k: torch.cat(v).numpy() for k, v in rows.items()}


def summarise(stats: dict[str, np.ndarray], labels: tuple[str, ...]) -> dict:
    """Per label: mean P unmasked and masked, fraction of windows where masking raises P, mean r and fraction r > 0."""
    raised = stats["p_masked"] > stats["p_unmasked"]
    return {
        label: {
            "p_unmasked": float(stats["p_unmasked"][:, j].mean()),
            "p_masked": float(stats["p_masked"][:, j].mean()),
            "masking_raises": float(raised[:, j].mean()),
            "r_mean": float(stats["r"][:, j].mean()),
            "r_positive": float((stats["r"][:, j] > 0).mean()),
        }
        for j, label in enumerate(labels)
    }


def collect_windows(manifest: Manifest, records, info, normal_per_image: int, max_normal: int, seed: int):
    """{group: (N, 3, W, W) float tensor} of lesion windows by class and normal-tissue windows; failures listed."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[np.ndarray]] = {}
    failures = []
    for record in records:
        path = manifest.resolve(record)
        try:
            prepared = load_prepared(path, info.preprocess_settings, spacing=record.spacing)
        except (ImageReadError, ValueError, OSError) as exc:
            failures.append({"path": str(path), "reason": str(exc)})
            continue
        boxes = [(f.label, prepared.map_box(f.box)) for f in record.findings
                 if f.box is not None and f.label in info.labels and f.label != NO_FINDING]  # fmt: skip
        for label, window in lesion_windows(prepared.image, boxes, info.input_size):
            groups.setdefault(label, []).append(window)
        if record.is_normal and len(groups.get(NORMAL, [])) < max_normal:
            for window in tissue_windows(prepared.image, prepared.breast_box, info.input_size, normal_per_image, rng):
                groups.setdefault(NORMAL, []).append(window)
    tensors = {g: torch.from_numpy(np.stack(w[:max_normal] if g == NORMAL else w)).permute(0, 3, 1, 2).float() / 255
               for g, w in groups.items()}  # fmt: skip
    return tensors, failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path, help="manifest JSON")
    ap.add_argument("--split", help="manifest split (default: every image)")
    ap.add_argument("--masks", type=int, default=64)
    ap.add_argument("--fills", nargs="+", choices=MASK_FILLS, default=list(MASK_FILLS))
    ap.add_argument("--normal-per-image", type=int, default=2)
    ap.add_argument("--max-normal", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, type=Path, help="JSON to write")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    model, info = load_checkpoint(args.model, map_location="cpu")
    model.eval()
    manifest = Manifest.load(args.data)
    records = manifest.split(args.split) if args.split else manifest.records
    windows, failures = collect_windows(manifest, records, info, args.normal_per_image, args.max_normal, args.seed)
    results = {
        fill: {g: {"windows": len(w), "per_label": summarise(masked_view_stats(model, w, args.masks, fill, args.seed), info.labels)}
               for g, w in windows.items()}  # fmt: skip
        for fill in args.fills
    }
    spacing = info.preprocess_settings.target_spacing
    report = {
        "provenance": provenance(),
        "config": {"model": str(args.model), "data": str(args.data), "split": args.split, "masks": args.masks,
                   "grid": 8, "keep_prob": 0.5, "seed": args.seed, "window_px": info.input_size,
                   "window_mm": info.input_size * spacing if spacing else None, "labels": list(info.labels)},
        "results": results,
        "failures": failures,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    write_json(args.out, report)
    for fill, groups in results.items():
        for g, entry in groups.items():
            cells = ", ".join(f"{label} {v['p_unmasked']:.2f}->{v['p_masked']:.2f} (raised {v['masking_raises']:.0%}, "
                              f"r {v['r_mean']:+.2f})" for label, v in entry["per_label"].items())  # fmt: skip
            print(f"{fill:<6} {g:<14} {entry['windows']:>3} windows: {cells}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
