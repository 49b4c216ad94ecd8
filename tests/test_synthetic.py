"""Synthetic mammograms: arrays (anatomy, lesions, texture statistics) and the VinDr-layout data set."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy.ndimage import maximum_filter

from correlax.data.synthetic import (
    BREAST_COLUMNS,
    FINDING_COLUMNS,
    MASS_KINDS,
    add_calcification_cluster,
    add_mass,
    image_shape,
    make_synthetic_dataset,
    pixel_spacing,
    power_law_noise,
    synth_breast,
    synth_phantom,
    to_uint16,
)
from correlax.data.vindr import load_vindr

SIZE = 512
VINDR_BREAST = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                "breast_birads", "breast_density", "split"]
VINDR_FINDING = VINDR_BREAST[:9] + ["finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax", "split"]


def spectrum_slope(patch: np.ndarray) -> float:
    """Slope of the radially averaged power spectrum in log-log, over low-to-middle frequencies."""
    n = patch.shape[0]
    window = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fftshift(np.fft.fft2((patch - patch.mean()) * window))) ** 2
    y, x = np.indices(power.shape) - n // 2
    r = np.hypot(x, y).astype(int).ravel()
    radial = np.bincount(r, power.ravel()) / np.bincount(r)
    f = np.arange(radial.size)
    keep = (f >= 2) & (f <= n // 8)
    return float(np.polyfit(np.log(f[keep]), np.log(radial[keep]), 1)[0])


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn") / "data", n_images=14, seed=3, size=SIZE,
                                  test_fraction=0.25)


def test_synth_breast_is_deterministic_per_seed():
    a, mask_a = synth_breast(np.random.default_rng(7), SIZE, "MLO", "L")
    b, mask_b = synth_breast(np.random.default_rng(7), SIZE, "MLO", "L")
    c, _ = synth_breast(np.random.default_rng(8), SIZE, "MLO", "L")
    assert np.array_equal(a, b) and np.array_equal(mask_a, mask_b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("view,laterality", [("CC", "L"), ("CC", "R"), ("MLO", "L"), ("MLO", "R")])
def test_image_type_size_and_anatomy(view, laterality):
    pixels, breast = synth_breast(np.random.default_rng(1), SIZE, view, laterality)
    assert pixels.dtype == np.uint16 and pixels.shape == image_shape(SIZE) == (SIZE, 410)
    assert breast.shape == pixels.shape and breast.dtype == bool
    assert pixels.max() < 2**12
    assert 0.25 < breast.mean() < 0.85
    assert np.median(pixels[breast]) > 5 * np.median(pixels[~breast])  # bright breast on a dark background
    chest_wall = 0 if laterality == "L" else -1
    assert breast[:, chest_wall].mean() > 0.5 and breast[:, -1 - chest_wall].mean() < 0.05


def test_pectoral_muscle_only_on_mlo_in_the_upper_chest_wall_corner():
    cc = synth_phantom(np.random.default_rng(2), SIZE, "CC", "L")
    mlo = synth_phantom(np.random.default_rng(2), SIZE, "MLO", "R")
    assert not cc.pectoral.any()
    assert mlo.pectoral[0, -1] and not mlo.pectoral[-1, -1] and not mlo.pectoral[0, 0]
    assert np.median(mlo.pixels[mlo.pectoral]) > np.median(mlo.pixels[mlo.breast & ~mlo.pectoral])
    assert not (mlo.lesion_zone & mlo.pectoral).any()


def test_large_images_have_the_requested_height():
    pixels, _ = synth_breast(np.random.default_rng(0), 1536, "CC", "R")
    assert pixels.shape == (1536, 1228)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="view"):
        synth_breast(np.random.default_rng(0), SIZE, "ML", "L")
    with pytest.raises(ValueError, match="size"):
        synth_breast(np.random.default_rng(0), 32, "CC", "L")
    with pytest.raises(ValueError, match="kind"):
        add_mass(np.random.default_rng(0), np.zeros((SIZE, 410)), np.ones((SIZE, 410), bool), kind="square")
    with pytest.raises(ValueError, match="no room"):
        add_mass(np.random.default_rng(0), np.zeros((SIZE, 410)), np.zeros((SIZE, 410), bool))


@pytest.mark.parametrize("seed", range(6))
def test_lesion_boxes_lie_inside_the_image_and_the_breast(seed):
    rng = np.random.default_rng(seed)
    phantom = synth_phantom(rng, SIZE, ["CC", "MLO"][seed % 2], "LR"[seed // 3])
    pixels, mass_box = add_mass(rng, phantom.pixels, phantom.lesion_zone, kind=MASS_KINDS[seed % 4])
    pixels, calc_box = add_calcification_cluster(rng, pixels, phantom.lesion_zone)
    h, w = pixels.shape
    for x0, y0, x1, y1 in (mass_box, calc_box):
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert phantom.breast[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].all()
    assert pixels.dtype == phantom.pixels.dtype


def test_lesion_sizes_scale_with_the_image():
    def mean_mass_side(size: int) -> float:
        sides = []
        for seed in range(4):
            rng = np.random.default_rng(seed)
            phantom = synth_phantom(rng, size, "CC", "L", density=0.3)
            _, (x0, y0, x1, y1) = add_mass(rng, phantom.pixels, phantom.lesion_zone, kind="round")
            sides.append(max(x1 - x0, y1 - y0))
        return float(np.mean(sides))

    assert 2.0 < mean_mass_side(1024) / mean_mass_side(SIZE) < 2.6


@pytest.mark.parametrize("seed", range(5))
def test_calcification_box_holds_several_bright_specks(seed):
    rng = np.random.default_rng(seed)
    phantom = synth_phantom(rng, SIZE, "CC", "L")
    before = to_uint16(phantom.pixels)
    after, (x0, y0, x1, y1) = add_calcification_cluster(rng, before, phantom.lesion_zone, n_specks=6, contrast=700)
    assert after.dtype == np.uint16
    region = after[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].astype(float)
    background = np.median(region)
    assert region.max() - background > 400  # well above the surrounding tissue
    # several separate specks: local maxima (3x3) standing 300 above the box's median
    peaks = (region == maximum_filter(region, size=3)) & (region > background + 300)
    assert peaks.sum() >= 4
    # nothing changed outside the box
    outside = np.ones(before.shape, bool)
    outside[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = False
    assert np.array_equal(before[outside], after[outside])


@pytest.mark.parametrize("kind", MASS_KINDS)
def test_mass_is_brighter_than_its_surroundings(kind):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        phantom = synth_phantom(rng, SIZE, "MLO", "L")
        pixels, (x0, y0, x1, y1) = add_mass(rng, phantom.pixels, phantom.lesion_zone, kind=kind)
        x0, y0, x1, y1 = int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
        w, h = x1 - x0, y1 - y0
        centre = pixels[y0 + h // 4:y1 - h // 4, x0 + w // 4:x1 - w // 4].mean()
        top, left = max(0, y0 - h // 2), max(0, x0 - w // 2)
        around = pixels[top:y1 + h // 2, left:x1 + w // 2]
        ring = np.ones(around.shape, bool)
        ring[y0 - top:y1 - top, x0 - left:x1 - left] = False
        assert centre > around[ring].mean() + 150, (kind, seed)


def test_power_law_noise_has_a_minus_three_spectrum():
    field = power_law_noise(np.random.default_rng(0), (256, 256), beta=3.0)
    assert abs(field.mean()) < 1e-3 and abs(field.std() - 1) < 1e-3
    assert -3.4 < spectrum_slope(field) < -2.6


@pytest.mark.parametrize("seed,view", [(0, "CC"), (1, "MLO"), (2, "CC")])
def test_breast_texture_spectrum_slope_is_about_minus_three(seed, view):
    phantom = synth_phantom(np.random.default_rng(seed), SIZE, view, "L")
    rows, cols = np.nonzero(phantom.lesion_zone)
    cy, cx, n = int(rows.mean()), int(cols.mean()), 128
    patch = phantom.pixels[cy - n // 2:cy + n // 2, cx - n // 2:cx + n // 2]
    assert phantom.breast[cy - n // 2:cy + n // 2, cx - n // 2:cx + n // 2].all()
    assert -3.8 < spectrum_slope(patch) < -2.2


def test_dataset_csv_columns_are_exactly_vindr(dataset):
    breast_columns, breast_rows = read_csv(dataset / "breast-level_annotations.csv")
    finding_columns, finding_rows = read_csv(dataset / "finding_annotations.csv")
    assert breast_columns == VINDR_BREAST == list(BREAST_COLUMNS)
    assert finding_columns == VINDR_FINDING == list(FINDING_COLUMNS)
    assert len(breast_rows) == 16  # 14 images rounded up to 4 whole studies
    assert {r["split"] for r in breast_rows} == {"training", "test"}
    assert sum(r["split"] == "test" for r in breast_rows) == 4
    by_study: dict[str, list[dict[str, str]]] = {}
    for r in breast_rows:
        by_study.setdefault(r["study_id"], []).append(r)
    for rows in by_study.values():
        assert sorted((r["laterality"], r["view_position"]) for r in rows) == [
            ("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
        assert len({r["split"] for r in rows}) == 1 and len({r["breast_density"] for r in rows}) == 1
    assert {r["image_id"] for r in finding_rows} == {r["image_id"] for r in breast_rows}

    categories = set()
    for r in finding_rows:
        names = ast.literal_eval(r["finding_categories"])
        assert isinstance(names, list) and len(names) == 1
        categories.add(names[0])
        coords = [r[k] for k in ("xmin", "ymin", "xmax", "ymax")]
        if names == ["No Finding"]:
            assert coords == ["", "", "", ""] and r["finding_birads"] == ""
        else:
            x0, y0, x1, y1 = map(float, coords)
            assert 0 <= x0 < x1 <= int(r["width"]) and 0 <= y0 < y1 <= int(r["height"])
            assert r["finding_birads"].startswith("BI-RADS ")
    assert categories == {"Mass", "Suspicious Calcification", "No Finding"}


def test_dataset_dicoms_carry_the_vindr_tags(dataset):
    _, rows = read_csv(dataset / "breast-level_annotations.csv")
    spacing = pixel_spacing(SIZE)
    for r in rows:
        path = dataset / "images" / r["study_id"] / f"{r['image_id']}.dicom"
        ds = pydicom.dcmread(path)
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.Modality == "MG"
        assert ds.BitsAllocated == 16 and ds.BitsStored == 12 and ds.PixelRepresentation == 0
        assert (ds.Rows, ds.Columns) == (int(r["height"]), int(r["width"]))
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([spacing, spacing])
        assert ds.ImageLaterality == r["laterality"] and ds.ViewPosition == r["view_position"]
        assert ds.PatientID == r["study_id"]
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.shape == (ds.Rows, ds.Columns) and pixels.max() < 4096


def test_dataset_is_deterministic(dataset, tmp_path):
    again = make_synthetic_dataset(tmp_path / "again", n_images=14, seed=3, size=SIZE, test_fraction=0.25)
    files = sorted(p.relative_to(dataset) for p in dataset.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((dataset / f).read_bytes() == (again / f).read_bytes() for f in files)
    other = make_synthetic_dataset(tmp_path / "other", n_images=4, seed=4, size=SIZE)
    assert (other / "breast-level_annotations.csv").read_text() != (dataset / "breast-level_annotations.csv").read_text()


def test_dataset_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="n_images"):
        make_synthetic_dataset(tmp_path, n_images=0)
    with pytest.raises(ValueError, match="test_fraction"):
        make_synthetic_dataset(tmp_path, n_images=4, test_fraction=1.5)


def test_dataset_reads_through_the_vindr_adapter(dataset):
    manifest = load_vindr(dataset)
    assert len(manifest.records) == 16 and not manifest.missing
    assert {r.split for r in manifest.records} == {"train", "test"}
    labels = {f.label for r in manifest.records for f in r.findings}
    assert {"mass", "calcification"} <= labels <= {"mass", "calcification", "no_finding"}
    assert all(r.spacing == pytest.approx((pixel_spacing(SIZE),) * 2) for r in manifest.records)
