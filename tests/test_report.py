import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from correlax.evaluation.classification import classification_report
from correlax.evaluation.pointing_game import MultiMethodScorer
from correlax.explain.baselines import CenterExplainer, RandomPointExplainer
from correlax.report import panels_for_image, write_report

MIAS = Path(__file__).resolve().parents[1].parent / "shared/data/mini-mias"
LABELS = ("no_finding", "mass", "calcification")


def _case(rng: np.random.Generator, i: int):
    """A breast-like image (from mini-MIAS when present) with a lesion box and two fake CorRELAX maps."""
    path = MIAS / "images" / f"mdb{[1, 2, 5, 10][i % 4]:03d}.png"
    if path.exists():
        import cv2

        grey = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (256, 256), interpolation=cv2.INTER_AREA)
    else:
        yy, xx = np.mgrid[:256, :256]
        grey = np.where((xx / 200) ** 2 + ((yy - 128) / 120) ** 2 < 1, 120, 0).astype(np.uint8)
    grey[grey < 20] = 0
    image = torch.from_numpy(np.repeat(grey[None], 3, axis=0) / 255.0).float()
    cx, cy = int(rng.integers(60, 140)), int(rng.integers(70, 180))
    boxes = {"mass": [(cx - 15, cy - 15, cx + 15, cy + 15)]}
    if i % 2:
        boxes["calcification"] = [(cx + 20, cy - 40, cx + 45, cy - 10)]
    yy, xx = np.mgrid[:256, :256]
    maps = {}
    for name, scale in (("correlax-prediction", 0.6), ("correlax-correlation", 0.3)):
        jitter = rng.normal(0, 25, 2)
        bump = np.exp(-((xx - cx - jitter[0]) ** 2 + (yy - cy - jitter[1]) ** 2) / (2 * 20**2))
        maps[name] = np.stack([0 * bump, scale * bump, 0.5 * scale * np.roll(bump, 30, axis=1)]).astype(np.float32)
    return image, grey, boxes, maps


def _sample_report(out_dir: Path) -> Path:
    rng = np.random.default_rng(0)
    board = MultiMethodScorer(LABELS)
    baselines = [CenterExplainer(LABELS, sigma=20), RandomPointExplainer(LABELS, seed=1, sigma=8)]
    panels = []
    for i in range(4):
        image, grey, boxes, maps = _case(rng, i)
        for explainer in baselines:
            maps.update(explainer.attribute(image))
        breast = (0, 0, 256, 256)
        points = board.add(maps, boxes, breast_box=breast)
        if i < 2:
            panels += panels_for_image(f"img{i}", grey, maps, LABELS, boxes, points, breast_box=breast)
    y_true = rng.random((60, 3)) < 0.4
    y_prob = np.clip(y_true * 0.5 + rng.random((60, 3)) * 0.6, 0, 1)
    metrics = {
        "title": "Test report",
        "run": {"model": "tiny", "images": 4},
        "classification": classification_report(y_true, y_prob, LABELS, thresholds={"mass": 0.4}),
        "pointing_game": board.result(),
    }
    json.dumps(metrics)  # the metrics block stays JSON-serialisable
    return write_report(out_dir, metrics, panels)


def test_report_files_and_content(tmp_path):
    html_path = _sample_report(tmp_path)
    html = html_path.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', html)
    assert len(srcs) == 1 + 3  # the chart + one panel per scored class of the first two images (1 + 2)
    for src in srcs:
        assert not src.startswith(("http", "/")) and (tmp_path / src).stat().st_size > 1000
    assert "http://" not in html and "https://" not in html  # opens offline
    assert "Reference protocol" in html and "Standard protocol" in html
    assert html.count('class="none">none</td>') == 2  # center and random: scored without a threshold
    assert "<td>0.25</td>" in html and "<td>0.1</td>" in html


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    chromium = CHROMIUM
    html_path = _sample_report(tmp_path / "report")
    # a copy of the page that records, once loaded, whether every image decoded
    probe = html_path.with_name("probe.html")
    script = (
        "<script>window.addEventListener('load',()=>{const imgs=[...document.images];"
        "document.body.setAttribute('data-loaded',imgs.filter(i=>i.complete&&i.naturalWidth>0).length+'/'+imgs.length);});"
        "</script>"
    )
    html = html_path.read_text().replace('loading="lazy"', "").replace("</body>", script + "</body>")
    probe.write_text(html)
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    match = re.search(r'data-loaded="(\d+)/(\d+)"', result.stdout)
    assert match, result.stderr[-2000:]
    loaded, total = map(int, match.groups())
    assert total == 4 and loaded == total
