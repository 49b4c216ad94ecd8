"""One static, offline HTML report (inline CSS, PNGs beside it under relative paths).

``metrics`` may hold (each section is shown when present):
- ``"title"``: the page title; ``"run"``: {name: value} facts about the run (model, data, settings);
- ``"classification"``: the dict of ``correlax.evaluation.classification.classification_report``;
- ``"pointing_game"``: {method: PointingGameScorer.result()} (the metrics.json block per method).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from correlax.fileio import atomic_write_bytes, atomic_write_text
from correlax.labels import DISPLAY_NAMES
from correlax.report.figures import ImagePanel, label_order, panel_png, pointing_chart_png

CSS = """
:root { --ink:#1d2330; --muted:#5d6678; --line:#e3e6ec; --accent:#2f6fde; --bg:#f6f7fa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#14213d; color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; }
header p { margin:0; color:#c9d2e6; font-size:13px; }
main { max-width:1180px; margin:0 auto; padding:8px 40px 48px; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 24px 22px; margin:22px 0; }
h2 { font-size:19px; margin:0 0 10px; }
h3 { font-size:15px; margin:18px 0 6px; }
p.note, figcaption { color:var(--muted); font-size:13px; }
table { border-collapse:collapse; width:100%; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:#f0f3f8; font-weight:600; }
th:first-child, td:first-child { text-align:left; }
tbody tr:hover { background:#fafbfd; }
td .ci { color:var(--muted); font-size:11px; }
td.none { color:var(--muted); font-style:italic; }
.tag { display:inline-block; padding:1px 7px; border-radius:9px; font-size:11px; background:#eef2fb; color:var(--accent); }
.facts td { text-align:left; white-space:normal; }
.facts td:first-child { width:220px; color:var(--muted); }
figure { margin:14px 0; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
.panels figure { break-inside:avoid; }
.legend span { display:inline-block; margin-right:16px; }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; border:2px solid; vertical-align:-1px; }
"""

PROTOCOLS = """
<p class="note"><b>Reference protocol</b> (the paper's numbers): images with at least one boxed finding;
for each class present, the point is the maximum of that class's map inside the breast crop. It is a hit when
it lies inside a true box of the class enlarged by {margin} pixels on every side (clipped to the crop)
<i>and</i> the map's maximum exceeds the method's threshold (0.25 for prediction maps, 0.1 for correlation
maps; the other methods' maps are not probabilities and are scored <i>without</i> a threshold).
Per class: hits / images with the class. <b>Average</b> = total hits / number of images (the paper's figure;
not a mean over classes); <b>class mean</b> = the mean of the per-class accuracies.</p>
<p class="note"><b>Standard protocol</b> (Zhang et al., 2018): the point is the maximum of the whole map;
a hit when it lies within {tolerance} of a true box pixel of the class; no threshold; accuracy = mean over
classes of hits / (hits + misses). Brackets: Wilson 95% intervals; (hits/n) below.</p>
"""


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _name(label: str) -> str:
    return escape(DISPLAY_NAMES.get(label, label))


def _table(head: Sequence[str] | None, rows: Sequence[Sequence[str]], cls: str = "") -> str:
    th = "".join(f"<th>{h}</th>" for h in head) if head else ""
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    thead = f"<thead><tr>{th}</tr></thead>" if th else ""
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def _facts(run: Mapping) -> str:
    rows = [[escape(str(k)), escape(str(v))] for k, v in run.items()]
    return f"<section><h2>Run</h2>{_table(None, rows, 'facts')}</section>"


def _classification(report: Mapping) -> str:
    head = ["label", "support", "ROC-AUC", "precision @0.5", "recall @0.5", "F1 @0.5",
            "threshold", "precision", "recall", "F1"]
    rows = []
    for label, e in report["labels"].items():
        a, c = e["at_0.5"], e.get("at_chosen")
        chosen = [_fmt(c[k], 2 if k == "threshold" else 3) for k in ("threshold", "precision", "recall", "f1")] if c else ["–"] * 4
        rows.append([_name(label), str(e["support"]), _fmt(e["roc_auc"]),
                     _fmt(a["precision"]), _fmt(a["recall"]), f"<td><b>{_fmt(a['f1'])}</b></td>", *chosen])
    crops = report.get("crops")
    note = f"{crops} crops. " if crops is not None else ""
    return (
        "<section><h2>Classifier</h2>"
        f'<p class="note">{note}Per-label precision, recall and F1 of the crop classifier at probability 0.5 '
        "and at the per-label threshold chosen on validation (when given); multi-label, sigmoid outputs.</p>"
        f"{_table(head, rows)}</section>"
    )


def _acc_cell(entry: Mapping | None) -> str:
    if not entry:
        return '<td class="none">–</td>'
    lo, hi = entry["ci95"]
    return (f'<td>{entry["acc"]:.3f} <span class="ci">[{lo:.2f}, {hi:.2f}]</span><br>'
            f'<span class="ci">{entry["hits"]}/{entry["n"]}</span></td>')


def _pointing_tables(pointing: Mapping[str, Mapping]) -> str:
    methods = list(pointing)
    classes = label_order({c for m in methods for p in ("reference", "standard") for c in pointing[m][p]["per_class"]})
    ref_rows, std_rows = [], []
    for m in methods:
        ref, std = pointing[m]["reference"], pointing[m]["standard"]
        thr = ref.get("threshold")
        thr_cell = f"<td>{thr:g}</td>" if thr is not None else '<td class="none">none</td>'
        ref_rows.append([f"<b>{escape(m)}</b>", thr_cell, *(_acc_cell(ref["per_class"].get(c)) for c in classes),
                         f"<td><b>{_fmt(ref.get('average'))}</b></td>", _fmt(ref.get("class_mean"))])
        std_rows.append([f"<b>{escape(m)}</b>", *(_acc_cell(std["per_class"].get(c)) for c in classes),
                         f"<td><b>{_fmt(std.get('class_mean'))}</b></td>"])
    names = [_name(c) for c in classes]
    first = pointing[methods[0]]
    margin = first["reference"].get("margin_px", 32)
    std0 = first["standard"]
    tolerance = f"{std0['tolerance_mm']:g} mm" if std0.get("tolerance_mm") is not None else f"{std0.get('tolerance_px', 15):g} px"
    n_images = first.get("n_images")
    count = f" over {n_images} images with at least one boxed finding" if n_images is not None else ""
    return (
        "<h3>Reference protocol <span class='tag'>paper</span></h3>"
        + _table(["method", "threshold", *names, "average", "class mean"], ref_rows)
        + "<h3>Standard protocol <span class='tag'>Zhang et al.</span></h3>"
        + _table(["method", *names, "class mean"], std_rows)
        + PROTOCOLS.format(margin=f"{margin:g}", tolerance=tolerance)
        + f'<p class="note">Scored{count}.</p>'
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "image"


def write_report(
    out_dir: str | Path, metrics: Mapping, panels: Sequence[ImagePanel] = (), viewer: str | Path | None = None
) -> Path:
    """Write ``out_dir/report.html`` and its PNGs under ``out_dir/figures/``; return the HTML path.

    ``viewer``: a viewer page already written in ``out_dir`` (``correlax.report.viewer.ViewerWriter``), linked
    from the report.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    parts: list[str] = []
    if viewer is not None:
        href = escape(Path(viewer).name)
        parts.append(
            f'<section><h2>Zoomable viewer</h2><p><a href="{href}">Open the viewer</a>: every image at full '
            "resolution, each method's map per class as an overlay to switch on and off, the true boxes and the "
            'maps\' peaks as markers. It opens offline, without a server.</p></section>'
        )
    if metrics.get("run"):
        parts.append(_facts(metrics["run"]))
    if metrics.get("classification"):
        parts.append(_classification(metrics["classification"]))
    pointing = metrics.get("pointing_game")
    if pointing:
        atomic_write_bytes(fig_dir / "pointing_game.png", pointing_chart_png(pointing))
        parts.append(
            "<section><h2>Pointing Game</h2>" + _pointing_tables(pointing)
            + '<figure><img src="figures/pointing_game.png" alt="Pointing Game accuracy per class and method">'
            "<figcaption>Per-class accuracy with Wilson 95% intervals; the last group is the mean over classes."
            "</figcaption></figure></section>"
        )
    if panels:
        figures = []
        for i, panel in enumerate(panels):
            name = f"panel_{i:03d}_{_slug(panel.image_id)}_{_slug(panel.label)}.png"
            atomic_write_bytes(fig_dir / name, panel_png(panel))
            alt = f"{panel.image_id}, {DISPLAY_NAMES.get(panel.label, panel.label)}"
            figures.append(
                f'<figure><img src="figures/{name}" alt="{escape(alt)}" loading="lazy">'
                f"<figcaption><b>{escape(panel.image_id)}</b> — {_name(panel.label)}</figcaption></figure>"
            )
        parts.append(
            '<section class="panels"><h2>Images</h2><p class="note legend">Breast crop of each image; '
            '<span><span class="dot" style="border-color:#35d0ff;border-radius:2px"></span> true boxes of the class</span>'
            '<span><span class="dot" style="border-color:#1fbf5f"></span> pointed location, hit</span>'
            '<span><span class="dot" style="border-color:#ff3b3b"></span> miss</span> (reference protocol, '
            "each map shown on its own colour scale).</p>" + "".join(figures) + "</section>"
        )
    title = escape(str(metrics.get("title", "CorRELAX report")))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{CSS}</style></head><body><header><h1>{title}</h1>"
        f"<p>Findings in mammograms and their CorRELAX explanations · generated {stamp}</p></header>"
        f"<main>{''.join(parts)}</main></body></html>\n"
    )
    path = out_dir / "report.html"
    atomic_write_text(path, page)
    return path
