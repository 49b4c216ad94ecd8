"""Memory is bounded: reading and preparing cost a few bytes per pixel, and the limits refuse images by name.

The sweep from 10 to 100 megapixels is ``benchmarks/memory.py``; here a 6 MP image shows the mechanism.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from correlax.io import ImageReadError, Mammogram, read_image
from correlax.preprocess import PreprocessSettings, load_prepared, prepare, steps, to_uint8, to_unit_float
from dicom_factory import write_dicom

SRC = Path(__file__).resolve().parents[1] / "src"
MB_PER_MEGAPIXEL = 15  # read + prepare at 0.4 mm of a windowed 16-bit MONOCHROME1 DICOM: 9 now, 27 before

PEAK_OF_PREPARING = """
import json, sys
from pathlib import Path
from correlax.preprocess import PreprocessSettings, load_prepared

def status(field):
    return next(int(l.split()[1]) / 1024 for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))

Path("/proc/self/clear_refs").write_text("5")  # the peak starts anew here, after the imports
before = status("VmRSS:")
prepared = load_prepared(sys.argv[1], PreprocessSettings(target_spacing=0.4))
print(json.dumps({"peak_mb": status("VmHWM:") - before, "shape": prepared.image.shape}))
"""


def mammogram_pixels(rows: int, columns: int) -> np.ndarray:
    """uint16, 12-bit values with smooth texture (enlarged from a small random field)."""
    small = np.random.default_rng(0).random((rows // 16, columns // 16)) * 3000 + 500
    return cv2.resize(small.astype(np.uint16), (columns, rows), interpolation=cv2.INTER_LINEAR)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS reset needs Linux /proc")
def test_reading_and_preparing_cost_a_bounded_memory_per_megapixel(tmp_path):
    rows, columns = 2740, 2190  # 6 MP, at 0.1 mm
    path = write_dicom(tmp_path / "mg.dcm", mammogram_pixels(rows, columns), photometric="MONOCHROME1",
                       window=(2000, 2500), spacing=(0.1, 0.1))  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PEAK_OF_PREPARING, str(path)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC)}, check=True, timeout=300)  # fmt: skip
    result = json.loads(done.stdout)
    assert result["shape"] == [685, 548, 3]
    assert result["peak_mb"] / (rows * columns / 1e6) < MB_PER_MEGAPIXEL


def test_display_values_through_the_table_are_pydicoms_on_the_whole_image(tmp_path):
    pixels = mammogram_pixels(160, 128)
    pixels[:20] = 7  # background
    path = write_dicom(tmp_path / "mg.dcm", pixels, photometric="MONOCHROME1", rescale=(0.37, -12.5), window=(900, 700))
    ds = pydicom.dcmread(path)
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    expected = expected.max() - expected.astype(np.float64) + expected.min()
    got = read_image(path).pixels
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected.astype(np.float32))


@pytest.mark.parametrize(("dtype", "lo", "hi"), [(np.uint8, 3, 250), (np.uint16, 100, 60000), (np.int16, -30000, 30000),
                                              (np.float32, -3.5, 7.25), (np.float64, 0, 1e4)])  # fmt: skip
def test_to_uint8_is_the_unit_float_scaled_and_rounded(dtype, lo, hi, monkeypatch):
    monkeypatch.setattr(steps, "_SLICE_PIXELS", 1000)  # float images in 35 slices of 20 rows
    arr = (lo + np.random.default_rng(1).random((700, 50)) * (hi - lo)).astype(dtype)
    np.testing.assert_array_equal(to_uint8(arr), np.round(to_unit_float(arr) * 255.0).astype(np.uint8))


def test_an_image_too_large_once_prepared_is_refused_by_name_before_any_work(tmp_path):
    mammogram = Mammogram(pixels=np.zeros((400, 300), np.uint16), path=tmp_path / "big.dcm", spacing=(0.1, 0.1))
    with pytest.raises(ImageReadError) as caught:
        prepare(mammogram, PreprocessSettings(), max_pixels=100_000)
    message = str(caught.value)
    assert "big.dcm" in message and "300 x 400 = 120,000" in message and "limit of 100,000" in message
    # at 0.4 mm the same image is 75 x 100 pixels: within the limit
    assert prepare(mammogram, PreprocessSettings(target_spacing=0.4), max_pixels=100_000).image.shape == (100, 75, 3)


def test_load_prepared_applies_the_prepared_limit(tmp_path):
    path = tmp_path / "mg.png"
    cv2.imwrite(str(path), mammogram_pixels(160, 128))
    with pytest.raises(ImageReadError, match="mg.png.*limit of 10,000"):
        load_prepared(path, PreprocessSettings(), max_prepared_pixels=10_000)
    assert load_prepared(path, PreprocessSettings(target_spacing=0.4), 0.1, max_prepared_pixels=10_000).image.shape == (40, 32, 3)


def test_the_memory_benchmark_measures_each_stage_in_its_own_process(tmp_path):
    out = tmp_path / "memory.json"
    command = [sys.executable, str(SRC.parent / "benchmarks" / "memory.py"), "--megapixels", "0.5", "--stages", "read",
               "prepare", "--models", "0.4mm", "--out", str(out)]  # fmt: skip
    subprocess.run(command, env={"PYTHONPATH": str(SRC)}, check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    assert "commit" in result["provenance"]
    rows = {(r["format"], r["stage"]): r for r in result["results"]}
    assert set(rows) == {("png", "read"), ("png", "prepare"), ("dicom", "read"), ("dicom", "prepare")}
    assert rows["dicom", "prepare"]["prepared_shape"] == [198, 158]  # 790 x 632 at 0.1 mm, prepared at 0.4 mm
    assert all(r["peak_mb"] >= r["before_mb"] > 0 and r["mb_per_megapixel"] >= 0 for r in rows.values())
