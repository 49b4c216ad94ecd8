"""The zoomable viewer: ``correlax view`` on explain outputs, and the page in headless Chromium from file://."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import quote
from xml.etree import ElementTree

import cv2
import numpy as np
import pytest
from PIL import Image

from correlax.cli.main import main
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.evaluation.pointing_game import MultiMethodScorer
from correlax.pipelines.explain_files import explain_files
from correlax.io import read_image
from correlax.preprocess import PreprocessSettings, prepare
from correlax.report import write_report
from correlax.report.tiles import dzi_tiles, level_sizes, one_tile_level
from correlax.report.viewer import ViewerImage, ViewerWriter, embed_json, reference_peaks, viewer_data
from dicom_factory import write_dicom
from headless import CHROMIUM, HeadlessPage

LABELS = ("mass", "calcification")
SPOT = (24, 60)  # stored (x, y) of the bright spot in a left breast; the fake mass map peaks there


class BumpExplainer:
    """Stands in for CorRELAX in ``explain_files``: a Gaussian bump on the brightest prepared pixel (the spot)."""

    name = "bump"

    def settings_key(self) -> dict:
        return {"sigma": 4.0}

    def entry(self, image, breast_box, progress=None) -> dict[str, np.ndarray]:
        grey = image[0].numpy()
        h, w = grey.shape
        py, px = np.unravel_index(int(np.argmax(grey)), grey.shape)
        yy, xx = np.mgrid[:h, :w]
        bump = np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * 4.0**2)).astype(np.float32)
        other = np.roll(bump, (10, 3), axis=(0, 1))
        return {"labels": np.array(LABELS), "breast_box": np.array(breast_box), "prediction": np.stack([bump, 0.5 * other]),
                "corr_pred": np.stack([0.8 * bump, 0.3 * other]), "corr_partial": np.stack([0.7 * bump, 0.2 * other]),
                "rise": np.stack([bump, other]), "relax": 0.5 * other, "relax_centred": 0.5 * other, "relax_uncertainty": other, "corr_dist": other}  # fmt: skip


def _source(folder: Path, stem: str, right: bool, monochrome1: bool) -> tuple[Path, tuple[int, int]]:
    """A synthetic 12-bit DICOM breast with a bright 3-px spot; returns it and the spot's stored (x, y)."""
    h, w = 120, 80
    yy, xx = np.mgrid[:h, :w]
    display = np.where((xx / (0.8 * w)) ** 2 + ((yy - h / 2) / (0.45 * h)) ** 2 < 1, 1500 + 10 * (yy % 7), 0)
    display[SPOT[1] - 1 : SPOT[1] + 2, SPOT[0] - 1 : SPOT[0] + 2] = 4000
    spot = SPOT
    if right:
        display, spot = display[:, ::-1], (w - 1 - SPOT[0], SPOT[1])
    stored = 4095 - display if monochrome1 else display
    path = write_dicom(folder / f"{stem}.dcm", stored.astype(np.uint16), bits_stored=12, spacing=(0.1, 0.1),
                       photometric="MONOCHROME1" if monochrome1 else "MONOCHROME2")  # fmt: skip
    return path, spot


@pytest.fixture(scope="module")
def explained(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int]]]:
    """'correlax explain' outputs (through its pipeline, with the bump explainer) of a left MONOCHROME2 and a
    right MONOCHROME1 mammogram that the canonical flip mirrors; and ``correlax view`` run on them."""
    root = tmp_path_factory.mktemp("explained")
    images, out = root / "images", root / "out"
    images.mkdir()
    sources = {"left": _source(images, "left", right=False, monochrome1=False),
               "right_m1": _source(images, "right_m1", right=True, monochrome1=True)}  # fmt: skip
    settings = PreprocessSettings(canonical_flip=True, target_spacing=0.2)
    prepared = {stem: prepare(read_image(path), settings) for stem, (path, _) in sources.items()}
    assert not prepared["left"].flipped and prepared["right_m1"].flipped
    report = explain_files([(path, stem) for stem, (path, _) in sources.items()], out, BumpExplainer(), "test-model",
                           lambda path: prepare(read_image(path), settings), say=lambda _: None)  # fmt: skip
    assert len(report.done) == 2, report.failures
    assert main(["view", str(out)]) == 0
    return out, {stem: spot for stem, (_, spot) in sources.items()}


def _full_level(out: Path, source: dict, mode: str) -> np.ndarray:
    """The full-resolution level of a pyramid the page lists, put together from its tiles (PIL ``mode``)."""
    top = len(level_sizes(source["width"], source["height"])) - 1
    size, overlap = source["tileSize"], source["tileOverlap"]
    canvas = None
    for path in (out / source["tilesUrl"] / str(top)).iterdir():
        col, row = map(int, path.stem.split("_"))
        tile = np.asarray(Image.open(path).convert(mode))
        if canvas is None:
            canvas = np.zeros((source["height"], source["width"], *tile.shape[2:]), tile.dtype)
        x0, y0 = col * size - (overlap if col else 0), row * size - (overlap if row else 0)
        canvas[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    return canvas


def test_deep_zoom_pyramid_of_a_full_field_mammogram():
    sizes = level_sizes(3328, 4096)
    assert len(sizes) == 13 and sizes[0] == (1, 1) and sizes[-1] == (3328, 4096) and sizes[-2] == (1664, 2048)
    assert level_sizes(301, 7)[-2:] == [(151, 4), (301, 7)]  # halves rounded up
    image = np.random.default_rng(0).integers(0, 256, (200, 301), dtype=np.uint8)
    tiles = list(dzi_tiles(image, tile_size=128, overlap=1))
    top = [t for t in tiles if t.level == len(level_sizes(301, 200)) - 1]
    assert {(t.col, t.row) for t in top} == {(c, r) for c in range(3) for r in range(2)}
    rebuilt = np.zeros_like(image)
    for t in top:
        assert t.pixels.shape[0] <= 128 + 2 and t.pixels.shape[1] <= 128 + 2  # a tile and its overlap on each side
        x0, y0 = max(0, 128 * t.col - 1), max(0, 128 * t.row - 1)
        rebuilt[y0 : y0 + t.pixels.shape[0], x0 : x0 + t.pixels.shape[1]] = t.pixels
    np.testing.assert_array_equal(rebuilt, image)
    (smallest,) = [t for t in tiles if t.level == 0]
    assert smallest.pixels.shape == (1, 1) and abs(int(smallest.pixels[0, 0]) - image.mean()) < 3  # area means
    assert one_tile_level(301, 200, 128) == 7 and level_sizes(301, 200)[7] == (76, 50)  # level 8 is 151 wide
    assert {t.level for t in dzi_tiles(image, 128, 1, min_level=7)} == {7, 8, 9}


def test_view_writes_an_offline_page_on_the_stored_grid(explained):
    out, spots = explained
    page = out / "index.html"
    html = page.read_text()
    assert "http://" not in html and "https://" not in html and "<img" not in html  # no CDN, nothing loaded up front
    for asset in ("openseadragon.min.js", "openseadragon-LICENSE.txt", "viewer.js", "viewer.css"):
        assert (out / "viewer" / asset).stat().st_size > 1000
    data = viewer_data(page)
    assert [e["id"] for e in data["images"]] == ["left", "right_m1"]
    for entry in data["images"]:
        descriptor = ElementTree.parse(out / entry["tiles"]["tilesUrl"].replace("_files/", ".dzi")).getroot()
        assert descriptor.get("TileSize") == str(entry["tiles"]["tileSize"]) and descriptor.get("Format") == "png"
        assert descriptor[0].attrib == {"Width": "80", "Height": "120"}  # the standard descriptor, for other viewers
        grey = _full_level(out, entry["tiles"], "L")
        assert grey.shape == (entry["height"], entry["width"]) == (120, 80)  # the stored grid, full resolution
        y, x = np.unravel_index(int(np.argmax(grey)), grey.shape)  # the spot, bright after MONOCHROME1 inversion too
        assert abs(x - spots[entry["id"]][0]) <= 1 and abs(y - spots[entry["id"]][1]) <= 1
        assert len(entry["overlays"]) == 8 * 2  # eight CorRELAX maps × two classes
        peak = next(p for p in entry["peaks"] if p["method"] == "correlax-prediction" and p["label"] == "mass")
        assert abs(peak["x"] - x) <= 1.5 and abs(peak["y"] - y) <= 1.5  # mapped back through resampling and flip
        overlay = next(o for o in entry["overlays"] if o["method"] == "correlax-prediction" and o["label"] == "mass")
        rgba = _full_level(out, overlay["tiles"], "RGBA")
        oy, ox = np.unravel_index(int(np.argmax(rgba[..., 3])), rgba.shape[:2])
        assert abs(2 * ox + 0.5 - x) <= 2 and abs(2 * oy + 0.5 - y) <= 2  # prepared resolution, mirrored back


def test_view_shows_the_true_boxes_of_a_manifest(explained, tmp_path):
    out, spots = explained
    folder = tmp_path / "boxed"
    folder.mkdir()
    for name in ("right_m1.json", "right_m1.npz"):
        shutil.copy(out / name, folder / name)
    x, y = spots["right_m1"]
    box = (x - 5.0, y - 5.0, x + 5.0, y + 5.0)
    record = ImageRecord("r", "images/right_m1.dcm", "p", findings=[Finding("mass", box), Finding("no_finding")])
    Manifest(records=[record], root=out.parent).save(tmp_path / "manifest.json")
    assert main(["view", str(folder), "--data", str(tmp_path / "manifest.json")]) == 0
    assert viewer_data(folder / "index.html")["images"][0]["boxes"] == {"mass": [list(box)]}  # stored pixels, as given


def test_view_reports_a_bad_output_and_goes_on(explained, tmp_path, capsys):
    out, _ = explained
    folder = tmp_path / "partly"
    folder.mkdir()
    for name in ("left.json", "left.npz"):
        shutil.copy(out / name, folder / name)
    (folder / "gone.json").write_text(json.dumps({"source": "gone.dcm", "labels": ["mass"], "breast_box": [0, 0, 1, 1]}))
    assert main(["view", str(folder)]) == 1
    text = capsys.readouterr().out
    assert "1 image(s)" in text and "gone.json" in text
    assert main(["view", str(tmp_path / "empty")]) == 2


def _image_area(page: HeadlessPage) -> np.ndarray:
    return page.screenshot()[:, 380:].astype(int)  # right of the 360-px side panel


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_viewer_in_headless_chromium(explained, tmp_path):
    out, _ = explained
    state = "document.body && document.body.dataset.state && JSON.parse(document.body.dataset.state)"
    loaded = f"(() => {{ const s = {state}; return s && s.loaded ? s : null; }})()"
    with HeadlessPage(tmp_path / "profile") as page:
        page.open(f"{(out / 'index.html').as_uri()}#image=1&overlays=&opacity=1")
        first = page.wait_for(loaded)
        assert first["id"] == "right_m1" and first["items"] == 1  # only the selected image was fetched
        plain = _image_area(page)
        assert plain.std() > 5  # the mammogram was drawn

        page.evaluate("document.querySelector('[data-layer=\"correlax-prediction/mass\"]').click()")
        shown = page.wait_for(loaded)
        assert shown["overlays"] == ["correlax-prediction/mass"] and shown["items"] == 2
        with_overlay = _image_area(page)
        changed = np.abs(with_overlay - plain).max(axis=2) > 30
        assert changed.mean() > 0.002, "switching the overlay on changed no pixels"

        page.evaluate("const o = document.getElementById('opacity'); o.value = 0; o.dispatchEvent(new Event('input'))")
        page.wait_for(f"(() => {{ const s = {state}; return s && s.loaded && s.opacity === 0; }})()")
        faded = np.abs(_image_area(page) - plain).max(axis=2) > 30
        assert faded.mean() < 0.2 * changed.mean()  # what is left: the peak marker of the map switched on

        page.evaluate("document.getElementById('zoom-in').click(); document.getElementById('zoom-in').click()")
        zoomed = page.wait_for(f"(() => {{ const s = {state}; return s && s.loaded && s.zoom > 3.9 ? s : null; }})()")
        assert zoomed["zoom"] == pytest.approx(4, rel=0.02)
        page.wait_for("location.hash.includes('zoom=4.000')")  # the view is in the address: shareable
        cv2.imwrite(str(tmp_path / "zoomed.png"), page.screenshot())
        assert np.abs(_image_area(page) - plain).max(axis=2).mean() > 10, "zooming in changed nothing"

        page.evaluate("const s = document.getElementById('image'); s.value = 0; s.dispatchEvent(new Event('change'))")
        other = page.wait_for(f"(() => {{ const s = {state}; return s && s.loaded && s.id === 'left' ? s : null; }})()")
        assert other["items"] == 2  # the new image and its one overlay shown; the first one's were dropped


def test_report_links_a_viewer_of_the_pointing_game_images(tmp_path):
    labels = ("no_finding", "mass")
    yy, xx = np.mgrid[:64, :48]
    grey = np.where(xx < 40, 120, 0).astype(np.uint8)
    bump = np.exp(-((xx - 20) ** 2 + (yy - 30) ** 2) / 50.0).astype(np.float32)
    maps = {"correlax-prediction": np.stack([0 * bump, bump]), "center": np.stack([bump, np.roll(bump, 9, axis=0)])}
    boxes = {"mass": [(15.0, 25.0, 26.0, 36.0)]}
    board = MultiMethodScorer(labels)
    points = board.add(maps, boxes, breast_box=(0, 0, 40, 64))
    writer = ViewerWriter(tmp_path, page="viewer.html", title="Pointing Game")
    writer.add(ViewerImage.from_maps("img0", grey, maps, labels, boxes, reference_peaks(points)))
    html = write_report(tmp_path, {"title": "t", "pointing_game": board.result()}, viewer=writer.finish()).read_text()
    assert '<a href="viewer.html">' in html
    entry = viewer_data(tmp_path / "viewer.html")["images"][0]
    assert entry["boxes"] == {"mass": [[15.0, 25.0, 26.0, 36.0]]} and len(entry["overlays"]) == 2 * 2
    peak = next(p for p in entry["peaks"] if p["method"] == "correlax-prediction")
    assert (peak["label"], peak["x"], peak["y"]) == ("mass", 20, 30)  # where the map points: inside the true box


HOSTILE_LABELS = ("<img src=x onerror=\"window.PWNED = (window.PWNED || []).concat('label')\">",
                  "</script><script>window.PWNED = ['script block']</script><!--")  # fmt: skip
# an output file's stem, the viewer's image id; long, without spaces, as accession numbers and UIDs are
HOSTILE_NAME = "<svg onload=window.PWNED=['file name']>&amp;-1.2.840.113619.2.5.1762583153.215519.978957063.78"
HOSTILE_TITLE = "<script>window.PWNED = ['title']</script>"


def test_embedded_json_cannot_end_its_script_block():
    value = {"label": HOSTILE_LABELS[1], "id": HOSTILE_NAME, "nan": float("nan")}
    text = embed_json(value)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {**value, "nan": None}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_hostile_labels_ids_and_file_names_are_shown_as_text_and_never_run(explained, tmp_path):
    out, _ = explained
    folder = tmp_path / "hostile"
    folder.mkdir()
    summary = json.loads((out / "left.json").read_text())
    summary["labels"] = list(HOSTILE_LABELS)
    (folder / f"{HOSTILE_NAME}.json").write_text(json.dumps(summary))
    shutil.copy(out / "left.npz", folder / f"{HOSTILE_NAME}.npz")
    assert main(["view", str(folder), "--title", HOSTILE_TITLE]) == 0
    page_url = (folder / "index.html").as_uri()
    layer = "correlax-prediction/" + quote(HOSTILE_LABELS[0], safe="!*'()")  # as encodeURIComponent
    state = "document.body && document.body.dataset.state && JSON.parse(document.body.dataset.state)"
    with HeadlessPage(tmp_path / "profile") as page:
        page.run_before_each_page(
            "window.VIOLATIONS = []; document.addEventListener('securitypolicyviolation', "
            "(e) => window.VIOLATIONS.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        page.open(f"{page_url}#image=0&overlays={quote(layer, safe='')}&opacity=1")
        shown = page.wait_for(f"(() => {{ const s = {state}; return s && s.loaded ? s : null; }})()")
        assert shown["id"] == HOSTILE_NAME and shown["overlays"] == [layer]  # the page works with these names
        time.sleep(0.5)  # time for an injected element's error or load handler to have fired
        assert page.evaluate("window.PWNED === undefined"), page.evaluate("window.PWNED")
        assert page.evaluate("document.querySelectorAll('img, svg, iframe, object').length") == 0
        assert page.evaluate("document.scripts.length") == 3  # the data block and the two script files
        assert page.evaluate("window.VIOLATIONS") == []  # the page itself needs nothing the policy forbids
        # the hostile text is displayed, as text
        assert page.evaluate("document.title") == HOSTILE_TITLE
        assert page.evaluate("document.querySelector('h1').textContent") == HOSTILE_TITLE
        assert page.evaluate("document.getElementById('image').options[0].text") == HOSTILE_NAME
        assert page.evaluate("document.getElementById('caption').textContent").startswith(HOSTILE_NAME + " — ")
        # long names end in an ellipsis inside the side panel, which does not scroll sideways
        assert page.evaluate("document.querySelector('aside').scrollWidth - document.querySelector('aside').clientWidth") == 0
        caption = page.evaluate("[document.getElementById('caption').title, document.getElementById('caption').textContent]")
        assert caption[0] == caption[1]  # the whole text on hover
        headers = page.evaluate("[...document.querySelectorAll('#layers tr:first-child th')].map((th) => th.textContent)")
        assert headers == ["", *HOSTILE_LABELS]
        # and the policy stops inline script, should anything ever slip into the page as HTML
        page.evaluate("const s = document.createElement('script'); s.textContent = 'window.INLINE = 1'; "
                      "document.body.append(s); document.getElementById('caption').innerHTML = "
                      "'<img src=x onerror=\"window.HANDLER = 1\">'")  # fmt: skip
        time.sleep(0.5)
        assert page.evaluate("window.INLINE === undefined && window.HANDLER === undefined")
        assert len(page.evaluate("window.VIOLATIONS")) == 2  # both refused by the CSP, and reported
