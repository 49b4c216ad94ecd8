"""Issue 25: does a window's correlation tell the windows on a lesion from the rest of the film? From the map store.

For every boxed held-out film of a cross-validation run (``correlax crossval --out RUN``), it reads the CorRELAX
entries the run stored (no network runs) and reports, per window value (the correlation r(d, P_c), its partial
given the hidden tissue t, r re-centred on the windows of the same breast fraction, the covariance of d and P_c
where the entries hold it, and the prediction P_c):

- the within-film AUC of windows on a box of the class against the film's other windows (0.5: no better than
  chance; the map's peak can only find the lesion when this is high);
- the mean r on and off the boxes in bands of the window's breast fraction (the skin line's baseline);
- how much of r's spread over a film's windows is the noise of drawing K masks: 1 − mean((1 − r²)² / (K − 1)) /
  var(r), the large-sample approximation of the share that another draw of masks would reproduce;
- the Pointing Game (reference protocol, the run's margin) of the re-centred correlation map against the plain
  one, paired per (film, class) with the exact sign test;
- where the maps' peaks fall: the distance to the skin line in mm (as ``benchmarks/skin_confound.py``), beside
  the boxes' centres.

    python benchmarks/window_separation.py --run runs/l25/partial-s0 --out benchmarks/results/window-separation-0.4mm-seed0.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from correlax.data.records import Manifest
from correlax.evaluation.crossval import sign_test
from correlax.evaluation.localisation import boxed_records, boxes_in_prepared
from correlax.evaluation.pointing_game import point_reference
from correlax.evaluation.skin import distance_table, distance_to_skin_mm, peak_of, skin_distance_map, tissue_of
from correlax.evaluation.window_separation import BREAST_BANDS, band_centred, separation_auc, windows_on_boxes
from correlax.explain.kernel import place, smooth_grid
from correlax.explain.windows import WindowGrid
from correlax.fileio import write_json
from correlax.labels import NO_FINDING
from correlax.models import load_checkpoint
from correlax.pipelines.map_store import read_entry
from correlax.preprocess import load_prepared
from correlax.provenance import provenance

VALUES = ("correlation", "partial", "band-centred correlation", "covariance", "prediction")


def fold_entries(fold_dir: Path, settings: dict) -> dict[str, dict[str, np.ndarray]]:
    """The fold's stored CorRELAX entries made with ``settings``, by the resolved path of their image."""
    found = {}
    for path in sorted((fold_dir / "maps").glob("*/*.npz")):
        key, arrays = read_entry(path)
        if key.get("method") == "correlax" and key.get("settings") == settings:
            found[key["image"]["path"]] = arrays
    return found


def window_values(entry: dict[str, np.ndarray], centred: np.ndarray, c: int) -> dict[str, np.ndarray]:
    """Class ``c``'s window values of one entry; ``centred``: its band-centred correlation (L, gh, gw)."""
    values = {"correlation": entry["window_corr_pred"][c], "partial": entry["window_corr_partial"][c],
              "band-centred correlation": centred[c], "prediction": entry["window_prediction"][c]}  # fmt: skip
    if "window_cov_pred" in entry:  # entries written since the covariance map exists
        values["covariance"] = entry["window_cov_pred"][c]
    return values


def centred_map(entry: dict[str, np.ndarray], centred: np.ndarray, window: int, stride: int) -> np.ndarray:
    """The whole-image map of the band-centred correlation ``centred``, smoothed and placed as the correlation map is."""
    box = tuple(int(v) for v in entry["breast_box"])
    values = torch.from_numpy(centred)
    h, w = entry["corr_pred"].shape[1:]
    return place(smooth_grid(values, WindowGrid(box, window, stride)), box, h, w).numpy()


def interval(values: list[float], seed: int = 0, n_boot: int = 2000) -> dict:
    v = np.asarray(values, float)
    boots = np.random.default_rng(seed).choice(v, (n_boot, len(v))).mean(axis=1)
    return {"n": len(v), "mean": float(v.mean()), "median": float(np.median(v)),
            "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a correlax crossval --out folder whose folds ran CorRELAX")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    pairs, bands, failures, settings = [], {}, [], None
    for fold_dir in sorted(d for d in args.run.glob("fold*") if (d / "fold.json").is_file()):
        fold = json.loads((fold_dir / "fold.json").read_text())
        settings, margin_px = fold["config"]["correlax"], fold["config"]["margin_px"]
        models = Path(fold["config"].get("models_from") or args.run)
        _, info = load_checkpoint(models / fold_dir.name / "model" / "model.safetensors")
        entries = fold_entries(fold_dir, settings)
        manifest = Manifest.load(fold_dir / "manifest.json")
        labels = fold["labels"]
        for record in boxed_records(manifest.split("test"), labels):
            entry = entries.get(str(Path(manifest.resolve(record)).resolve()))
            if entry is None:
                failures.append({"image": record.image_id, "reason": "no stored CorRELAX entry with the run's settings"})
                continue
            prepared = load_prepared(manifest.resolve(record), info.preprocess_settings, spacing=record.spacing)
            box = tuple(int(v) for v in entry["breast_box"])
            valid = entry["window_masks"] > 0
            centred_windows = band_centred(entry["window_corr_pred"], entry["window_tissue"], valid)
            centred = centred_map(entry, centred_windows, settings["window"], settings["stride"])
            distances = skin_distance_map(tissue_of(prepared.image.mean(axis=2)))
            mm = prepared.spacing[1] if prepared.spacing else info.preprocess_settings.target_spacing
            peak_maps = {"correlation": entry["corr_pred"], "band-centred correlation": centred,
                         "prediction": entry["prediction"]}  # fmt: skip
            for label, boxes in boxes_in_prepared(record, prepared).items():
                if label == NO_FINDING or label not in labels:
                    continue
                c = labels.index(label)
                on = windows_on_boxes(box, valid.shape, settings["stride"], boxes)
                values = window_values(entry, centred_windows, c)
                r = values["correlation"]
                noise = ((1 - r[valid] ** 2) ** 2 / (entry["window_masks"][valid] - 1)).mean()
                for lo, hi in zip(BREAST_BANDS[:-1], BREAST_BANDS[1:]):
                    sel = valid & (entry["window_tissue"] >= lo) & (entry["window_tissue"] < hi)
                    band = bands.setdefault(f"{lo}-{min(hi, 1.0)}", {"on_boxes": [], "elsewhere": []})
                    band["on_boxes"] += r[sel & on].tolist()
                    band["elsewhere"] += r[sel & ~on].tolist()
                hits = {"correlation": point_reference(entry["corr_pred"][c], boxes, box, margin_px).hit,
                        "band-centred correlation": point_reference(centred[c], boxes, box, margin_px).hit}  # fmt: skip
                pairs.append({"fold": fold_dir.name, "image": record.image_id, "label": label,
                              "auc": {k: separation_auc(v, on, valid) for k, v in values.items()},
                              "correlation_reliability": float(1 - noise / r[valid].var()),
                              "reference_hit": hits,
                              "boxes_skin_mm": [distance_to_skin_mm(distances, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, mm)
                                                for b in boxes],
                              "peak_skin_mm": {k: distance_to_skin_mm(distances, *peak_of(m[c]), mm)
                                               for k, m in peak_maps.items()}})  # fmt: skip
    scored = [q for q in pairs if q["auc"]["correlation"] is not None]
    wins = sum(q["reference_hit"]["band-centred correlation"] and not q["reference_hit"]["correlation"] for q in pairs)
    losses = sum(q["reference_hit"]["correlation"] and not q["reference_hit"]["band-centred correlation"] for q in pairs)
    report = {
        "provenance": provenance(),
        "run": str(args.run),
        "settings": settings,
        "window_on_box": "the window's centre lies inside a box of the class",
        "n_pairs": len(pairs),
        "within_film_auc": {k: interval([q["auc"][k] for q in scored]) for k in VALUES
                            if scored and all(k in q["auc"] for q in scored)},
        "auc_pairs_without_windows_on_boxes": len(pairs) - len(scored),
        "correlation_reliability": interval([q["correlation_reliability"] for q in pairs]),
        "mean_correlation_by_breast_fraction": {
            b: {k: {"n": len(v), "mean": float(np.mean(v)) if v else None} for k, v in d.items()} for b, d in bands.items()
        },
        "pointing_game_reference": {
            "correlation_hits": sum(q["reference_hit"]["correlation"] for q in pairs),
            "band_centred_hits": sum(q["reference_hit"]["band-centred correlation"] for q in pairs),
            "paired": {"wins": wins, "losses": losses, "p": sign_test(wins, losses)},
        },
        "skin_distance_mm": distance_table([d for q in pairs for d in q["boxes_skin_mm"]],
                                           [q["peak_skin_mm"] for q in pairs]),
        "pairs": pairs,
        "failures": failures,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}: {len(pairs)} (film, class) pairs, {len(failures)} failures")
    for k, s in report["within_film_auc"].items():
        print(f"  {k:26s} within-film AUC mean {s['mean']:.3f} (95 % {s['ci95'][0]:.3f}-{s['ci95'][1]:.3f}), median {s['median']:.3f}")
    for k, d in report["skin_distance_mm"].items():
        print(f"  {k:26s} peak to the skin line: median {d['median']:.1f} mm, within 5 mm {d['within_5mm']}/{d['n']}")
    rel = report["correlation_reliability"]
    print(f"  correlation's reliability over a film's windows: mean {rel['mean']:.2f} (95 % {rel['ci95'][0]:.2f}-{rel['ci95'][1]:.2f})")
    pg = report["pointing_game_reference"]
    print(f"  Pointing Game: correlation {pg['correlation_hits']}/{len(pairs)}, band-centred {pg['band_centred_hits']}/"
          f"{len(pairs)} (+{wins}/-{losses}, p {pg['paired']['p']:.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
