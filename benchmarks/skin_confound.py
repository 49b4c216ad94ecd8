"""Issue 25: does the hidden tissue fraction drive the correlation map to the skin line? Measured, not assumed.

For the boxed held-out films of each fold model of a cross-validation run (``correlax crossval --out RUN``), it
runs CorRELAX (and Grad-CAM with ``--gradcam``) and reports

- the mechanism, per window: r(t, d) and r(t, P_c), with t_k the share of the window's breast that mask k hides,
  d_k the representation similarity and P_k,c the class probability, binned by the window's breast fraction
  (edge windows against windows inside the breast);
- where each map's peak falls: its distance to the skin line in mm (tissue = above 10 % of the prepared image's
  maximum, as in the issue), against the boxes' centres, for the prediction map, the correlation map, the
  partial correlation given t, and Grad-CAM.

    python benchmarks/skin_confound.py --run runs/l25/base-s0 --window-mm 25.6 --stride-mm 6.4 --masks 32 \\
        --min-tissue 0.1 --backend openvino --precision bf16 --gradcam --out benchmarks/results/skin-confound.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from correlax.cli.options import add_correlax_options, correlax_settings, run_settings
from correlax.data.records import Manifest
from correlax.evaluation.localisation import boxed_records, boxes_in_prepared
from correlax.evaluation.skin import distance_table, distance_to_skin_mm, peak_of, skin_distance_map, tissue_of
from correlax.explain.baselines import GradCamExplainer
from correlax.explain.explainer import CorrelaxExplainer
from correlax.fileio import write_json
from correlax.io import ImageReadError
from correlax.labels import NO_FINDING
from correlax.models import load_checkpoint
from correlax.preprocess import load_prepared
from correlax.provenance import provenance

log = logging.getLogger(__name__)
MAPS = {"correlax-prediction": "prediction", "correlax-correlation": "corr_pred", "correlax-partial": "corr_partial"}
EDGE_BINS = ((0.1, 0.5), (0.5, 0.9), (0.9, 0.99), (0.99, 1.01))  # window breast fraction


def window_mechanism(result, finding_rows: list[int]) -> list[dict]:
    """r(t, d), r(t, P_c) and |r(d, P_c)| per window, for windows that ran masks."""
    ran = result.window_masks > 0
    rows = []
    for lo, hi in EDGE_BINS:
        sel = ran & (result.window_tissue >= lo) & (result.window_tissue < hi)
        rows.append({
            "breast_fraction": [lo, min(hi, 1.0)],
            "windows": int(sel.sum()),
            "r_t_d": [float(v) for v in result.window_corr_tissue_dist[sel]],
            "r_t_p": [float(v) for c in finding_rows for v in result.window_corr_tissue_pred[c][sel]],
            "abs_r_d_p": [float(v) for c in finding_rows for v in np.abs(result.window_corr_pred[c][sel])],
            "abs_r_partial": [float(v) for c in finding_rows for v in np.abs(result.window_corr_partial[c][sel])],
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a correlax crossval --out folder (foldN/model, foldN/manifest.json)")
    p.add_argument("--gradcam", action="store_true", help="also where Grad-CAM's peaks fall")
    p.add_argument("--max-films", type=int, default=None, help="at most this many films per fold (a quick look)")
    p.add_argument("--out", type=Path, required=True)
    add_correlax_options(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    films, windows, failures = [], [], []
    used: dict | None = None  # the CorRELAX settings the fold models ran with (the same mm on every fold)
    for fold_dir in sorted(d for d in args.run.glob("fold*") if (d / "model" / "model.safetensors").is_file()):
        model, info = load_checkpoint(fold_dir / "model" / "model.safetensors")
        spacing = info.preprocess_settings.target_spacing
        settings = correlax_settings(args, info.input_size, spacing, gpu=False)
        explainer = CorrelaxExplainer(model, settings, run=run_settings(args))
        used = settings.to_dict()
        gradcam = GradCamExplainer(model, settings.window, settings.stride) if args.gradcam else None
        finding_rows = [i for i, label in enumerate(model.labels) if label != NO_FINDING]
        manifest = Manifest.load(fold_dir / "manifest.json")
        records = boxed_records(manifest.split("test"), model.labels)[: args.max_films]
        for record in records:
            try:
                prepared = load_prepared(manifest.resolve(record), info.preprocess_settings, spacing=record.spacing)
            except (ImageReadError, ValueError) as e:
                failures.append({"image": record.image_id, "reason": str(e)})
                continue
            mm = prepared.spacing[1] if prepared.spacing else spacing
            image = prepared.tensor()
            distances = skin_distance_map(tissue_of(prepared.image.mean(axis=2)))
            result = explainer.explain(image, prepared.breast_box)
            maps = {name: getattr(result, field) for name, field in MAPS.items()}
            if gradcam is not None:
                maps["gradcam"] = gradcam.attribute(image, prepared.breast_box)["gradcam"]
            boxes = boxes_in_prepared(record, prepared)
            for label, label_boxes in boxes.items():
                c = model.labels.index(label)
                film = {"fold": fold_dir.name, "image": record.image_id, "label": label, "spacing_mm": mm,
                        "boxes_mm": [distance_to_skin_mm(distances, (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, mm)
                                     for b in label_boxes],
                        "peaks_mm": {name: distance_to_skin_mm(distances, *peak_of(m[c]), mm) for name, m in maps.items()}}  # fmt: skip
                films.append(film)
            windows.append(window_mechanism(result, finding_rows))
            log.info("%s %s: %s", fold_dir.name, record.image_id, {k: round(v, 1) for k, v in films[-1]["peaks_mm"].items()})
    by_bin = []
    for i, (lo, hi) in enumerate(EDGE_BINS):
        pooled = {k: [v for w in windows for v in w[i][k]] for k in ("r_t_d", "r_t_p", "abs_r_d_p", "abs_r_partial")}
        by_bin.append({"breast_fraction": [lo, min(hi, 1.0)], "windows": sum(w[i]["windows"] for w in windows),
                       **{f"mean_{k}": float(np.mean(v)) if v else None for k, v in pooled.items()}})  # fmt: skip
    report = {
        "provenance": provenance(),
        "run": str(args.run),
        "settings": used,
        "tissue_rule": "prepared grey value above 10 % of the image's maximum; the image border counts as an edge",
        "n_pairs": len(films),
        "skin_distance_mm": distance_table([d for f in films for d in f["boxes_mm"]], [f["peaks_mm"] for f in films]),
        "mechanism_by_window_breast_fraction": by_bin,
        "pairs": films,
        "failures": failures,
        "wall_seconds": time.perf_counter() - t0,
    }
    write_json(args.out, report)
    print(f"wrote {args.out}: {len(films)} (film, class) pairs, {len(failures)} failures")
    for name, s in report["skin_distance_mm"].items():
        if s["n"]:
            print(f"  {name:22s} median {s['median']:5.1f} mm  (IQR {s['q25']:.1f}-{s['q75']:.1f}), within 5 mm {s['within_5mm']}/{s['n']}")
    for b in by_bin:
        print(f"  breast {b['breast_fraction']}: {b['windows']} windows, mean r(t,d) {b['mean_r_t_d']}, r(t,P) {b['mean_r_t_p']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
