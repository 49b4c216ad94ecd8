"""The viewer on a full-field mammogram: size on disk, time to write, and time until the image is drawn in
headless Chromium (from file://), for the current code and, with ``--before-src``, an older one.

    git archive b8da7bc src | tar -x -C /tmp/viewer-before      # the viewer before Deep Zoom tiles
    python benchmarks/viewer.py --before-src /tmp/viewer-before/src --out benchmarks/results/viewer.json

The image is synthetic (3328 × 4096, 8-bit, textured and noisy as a detector image is) with 14 maps (seven
methods × two classes) on a 0.2 mm grid (1165 × 1434), as ``correlax view`` shows an explained 0.07 mm image.
"Drawn" is the page's own report that every item on screen has all its tiles at the resolution shown
(``body[data-state].loaded``); "fetched" sums the image files the page asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from headless import CHROMIUM, HeadlessPage  # noqa: E402

WIDTH, HEIGHT = 3328, 4096
MAP_SHAPE = (1434, 1165)  # 0.2 mm grid of a 0.07 mm image
LABELS = ("mass", "calcification")
METHODS = ("correlax-prediction", "correlax-correlation", "correlax-weighted", "relax", "rise", "gradcam", "occlusion")
VIEWS = {  # the URL hash of each measured view
    "fit, image only": "image=0&overlays=&opacity=1",
    "fit, one overlay": "image=0&overlays=correlax-prediction/mass&opacity=0.6",
    "zoom 4, one overlay": f"image=0&overlays=correlax-prediction/mass&opacity=0.6&zoom=4&x={WIDTH // 2}&y={HEIGHT // 2}",
}
LOADED = "(() => { const s = document.body && document.body.dataset.state; return !!s && JSON.parse(s).loaded; })()"
# every image the page asks for (tiles, or the whole PNGs before), recorded as its src is set
RECORD_IMAGES = """window.FETCHED = [];
const src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
Object.defineProperty(HTMLImageElement.prototype, "src", { configurable: true, get() { return src.get.call(this); },
  set(url) { window.FETCHED.push(new URL(url, location.href).href); src.set.call(this, url); } });"""


def synthetic_mammogram(rng: np.random.Generator) -> np.ndarray:
    """A breast-shaped 8-bit image: smooth tissue texture, fine detector noise, black background."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH].astype(np.float32)
    breast = (xx / (0.85 * WIDTH)) ** 2 + ((yy - HEIGHT / 2) / (0.47 * HEIGHT)) ** 2 < 1
    texture = cv2.GaussianBlur(rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32), (0, 0), 12)
    grey = 130 + 900 * texture + 4 * rng.standard_normal((HEIGHT, WIDTH)).astype(np.float32)
    return np.where(breast, np.clip(grey, 1, 255), 0).astype(np.uint8)


def synthetic_maps(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """{method: (2, H, W)} smooth maps, each with a few bumps."""
    h, w = MAP_SHAPE
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    maps = {}
    for method in METHODS:
        per_label = []
        for _ in LABELS:
            m = np.zeros((h, w), np.float32)
            for cx, cy, s in zip(rng.uniform(0, w, 4), rng.uniform(0, h, 4), rng.uniform(30, 120, 4)):
                m += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2))
            per_label.append(m)
        maps[method] = np.stack(per_label)
    return maps


def build(out: Path) -> float:
    """Write the viewer of the synthetic image into ``out`` with the ``correlax`` on the path; its seconds."""
    from correlax.report.viewer import ViewerImage, ViewerWriter

    rng = np.random.default_rng(0)
    image = ViewerImage.from_maps("full-field", synthetic_mammogram(rng), synthetic_maps(rng), LABELS)
    start = time.perf_counter()
    writer = ViewerWriter(out)
    writer.add(image)
    writer.finish()
    return time.perf_counter() - start


def disk(out: Path) -> dict:
    """Bytes and files of the page and the image's own files (the scripts, the same for every report, apart)."""
    image_files = [p for p in (out / "viewer").rglob("*") if p.is_file() and p.parent != out / "viewer"]
    scripts = [p for p in (out / "viewer").iterdir() if p.is_file()]
    return {"image_bytes": sum(p.stat().st_size for p in image_files), "image_files": len(image_files),
            "page_bytes": (out / "index.html").stat().st_size,
            "script_bytes": sum(p.stat().st_size for p in scripts)}  # fmt: skip


def load(page_path: Path, view: str, profile: Path) -> dict:
    """Seconds from navigation until the view is drawn, and what the page fetched, in a fresh browser."""
    with HeadlessPage(profile, width=1440, height=900) as page:
        page.run_before_each_page(RECORD_IMAGES)
        start = time.perf_counter()
        page.open(f"{page_path.as_uri()}#{view}")
        while not page.evaluate(LOADED):
            if time.perf_counter() - start > 120:
                raise TimeoutError(f"{page_path}#{view} not drawn in 120 s")
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        fetched = [Path(unquote(urlparse(url).path)) for url in page.evaluate("window.FETCHED")]
    images = set(fetched)
    return {"seconds": seconds, "images_fetched": len(images), "bytes_fetched": sum(p.stat().st_size for p in images)}


def measure(out: Path, repeats: int) -> dict:
    views = {}
    for name, view in VIEWS.items():
        profiles = [Path(tempfile.mkdtemp(prefix="profile-", dir=out.parent)) for _ in range(repeats)]
        runs = [load(out / "index.html", view, profile) for profile in profiles]
        views[name] = {"seconds_median": statistics.median(r["seconds"] for r in runs),
                       "seconds": [round(r["seconds"], 3) for r in runs],
                       "images_fetched": runs[0]["images_fetched"], "bytes_fetched": runs[0]["bytes_fetched"]}  # fmt: skip
    return {"disk": disk(out), "views": views}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="results JSON (default: print it)")
    ap.add_argument("--before-src", type=Path, help="the src/ folder of an older correlax to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--build-only", type=Path, metavar="DIR", help=argparse.SUPPRESS)  # the older code's half
    args = ap.parse_args(argv)
    if args.build_only:
        print(json.dumps({"write_seconds": build(args.build_only)}))
        return 0
    if CHROMIUM is None:
        raise SystemExit("benchmarks/viewer.py needs chromium (apt-get install chromium)")
    from correlax.fileio import write_json
    from correlax.provenance import provenance
    image = {"width": WIDTH, "height": HEIGHT, "maps": len(METHODS) * len(LABELS), "map_shape": list(MAP_SHAPE)}
    results: dict = {"provenance": provenance(), "image": image, "window": [1440, 900]}
    with tempfile.TemporaryDirectory(prefix="viewer-bench-") as tmp:
        builds = {"after": Path(tmp) / "after"}
        if args.before_src:
            builds = {"before": Path(tmp) / "before", **builds}
        for name, out in builds.items():
            src = args.before_src if name == "before" else Path(__file__).resolve().parents[1] / "src"
            env = {**os.environ, "PYTHONPATH": str(src.resolve())}
            done = subprocess.run([sys.executable, __file__, "--build-only", str(out)], env=env, check=True,
                                  capture_output=True, text=True)  # fmt: skip
            results[name] = {**json.loads(done.stdout), **measure(out, args.repeats)}
    results["load_average_1min_at_end"] = os.getloadavg()[0]  # others' work on the machine (at start: provenance)
    if args.out:
        write_json(args.out, results)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
