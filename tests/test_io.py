"""Readers: DICOM (LUTs, photometric, compressed syntaxes, header fields), PNG/TIFF/PGM, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, MPEG4HP41, RLELossless

from correlax.io import ImageReadError, read_image
from dicom_factory import write_dicom


@pytest.fixture
def pixels12() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 4096, size=(40, 32), dtype=np.uint16)


def test_dicom_keeps_12bit_range_and_header_fields(tmp_path, pixels12):
    path = write_dicom(tmp_path / "a.dcm", pixels12, bits_stored=12, spacing=(0.085, 0.085),
                       laterality="L", view="MLO")
    m = read_image(path)
    assert m.pixels.dtype == np.uint16 and np.array_equal(m.pixels, pixels12)
    assert m.bits == 12 and m.photometric == "MONOCHROME2"
    assert m.spacing == (0.085, 0.085) and m.laterality == "L" and m.view == "MLO"


def test_dicom_16bit_range_survives(tmp_path):
    pixels = np.array([[0, 1, 30000, 65535]], dtype=np.uint16).repeat(3, axis=0)
    m = read_image(write_dicom(tmp_path / "a.dcm", pixels))
    assert m.pixels.dtype == np.uint16 and np.array_equal(m.pixels, pixels)


def test_imager_spacing_and_series_laterality_fallbacks(tmp_path, pixels12):
    path = write_dicom(tmp_path / "a.dcm", pixels12, imager_spacing=(0.1, 0.12), extra={"Laterality": "R"})
    m = read_image(path)
    assert m.spacing == (0.1, 0.12) and m.laterality == "R" and m.view is None


def test_view_from_view_code_sequence(tmp_path, pixels12):
    code = pydicom.Dataset()
    code.CodeMeaning = "medio-lateral oblique"
    m = read_image(write_dicom(tmp_path / "a.dcm", pixels12, extra={"ViewCodeSequence": [code]}))
    assert m.view == "MLO" and m.spacing is None and m.laterality is None


def test_monochrome1_is_inverted(tmp_path, pixels12):
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", pixels12, bits_stored=12))
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", pixels12, bits_stored=12, photometric="MONOCHROME1"))
    lo, hi = int(pixels12.min()), int(pixels12.max())
    assert np.array_equal(m1.pixels.astype(int), lo + hi - m2.pixels.astype(int))
    assert m1.photometric == "MONOCHROME1"


def test_voi_window_is_applied(tmp_path, pixels12):
    m = read_image(write_dicom(tmp_path / "w.dcm", pixels12, bits_stored=12, window=(2048, 1024)))
    below, above = pixels12 < 1536, pixels12 >= 2560
    # Linear window: values left of the window map to the range minimum, right of it to the maximum.
    assert np.all(m.pixels[below] == m.pixels.min()) and np.all(m.pixels[above] == m.pixels.max())
    inside = ~below & ~above
    order = np.argsort(pixels12[inside])
    assert np.all(np.diff(m.pixels[inside].astype(float)[order]) >= 0)


def test_modality_rescale_is_applied(tmp_path, pixels12):
    m = read_image(write_dicom(tmp_path / "r.dcm", pixels12, bits_stored=12, rescale=(2.0, -100.0)))
    np.testing.assert_allclose(m.pixels, pixels12 * 2.0 - 100.0)


@pytest.mark.parametrize(
    "syntax", [JPEG2000Lossless, JPEGLSLossless, RLELossless], ids=["j2k", "jpegls", "rle"]
)
def test_compressed_dicom_matches_uncompressed_twin(tmp_path, pixels12, syntax):
    plain = read_image(write_dicom(tmp_path / "plain.dcm", pixels12, bits_stored=12))
    packed_path = write_dicom(tmp_path / "packed.dcm", pixels12, bits_stored=12, transfer_syntax=syntax)
    assert pydicom.dcmread(packed_path).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(read_image(packed_path).pixels, plain.pixels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_8_and_16_bit(tmp_path, dtype):
    top = np.iinfo(dtype).max
    pixels = np.linspace(0, top, 30 * 20).reshape(30, 20).astype(dtype)
    cv2.imwrite(str(tmp_path / "a.png"), pixels)
    m = read_image(tmp_path / "a.png")
    assert m.pixels.dtype == dtype and np.array_equal(m.pixels, pixels) and m.spacing is None


def test_tiff_16_bit(tmp_path, pixels12):
    tifffile.imwrite(tmp_path / "a.tif", pixels12)
    m = read_image(tmp_path / "a.tif")
    assert m.pixels.dtype == np.uint16 and np.array_equal(m.pixels, pixels12)


def test_pgm(tmp_path):
    pixels = np.arange(24 * 16, dtype=np.uint16).reshape(24, 16).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "mdb999.pgm"), pixels)
    assert (tmp_path / "mdb999.pgm").read_bytes().startswith(b"P5")
    assert np.array_equal(read_image(tmp_path / "mdb999.pgm").pixels, pixels)


def test_colour_png_becomes_grey(tmp_path):
    grey = np.full((8, 8), 100, dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([grey] * 3))
    assert np.array_equal(read_image(tmp_path / "c.png").pixels, grey)


def _assert_read_error(path, fragment: str) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert path.name in message and fragment.lower() in message.lower(), message


def test_missing_file(tmp_path):
    _assert_read_error(tmp_path / "nothing.dcm", "no such file")


@pytest.mark.parametrize("name", ["notes.txt", "notes.png", "notes.dcm"])
def test_file_that_is_not_an_image(tmp_path, name):
    (tmp_path / name).write_text("this is not an image\n" * 20)
    _assert_read_error(tmp_path / name, "")


def test_damaged_png(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((50, 50), np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[:40])
    _assert_read_error(tmp_path / "a.png", "")


def test_truncated_dicom(tmp_path, pixels12):
    path = write_dicom(tmp_path / "cut.dcm", pixels12)
    path.write_bytes(path.read_bytes()[:-500])
    _assert_read_error(path, "")


def test_dicom_without_pixel_data(tmp_path, pixels12):
    _assert_read_error(write_dicom(tmp_path / "empty.dcm", pixels12, with_pixels=False), "no pixel data")


def test_unsupported_transfer_syntax(tmp_path, pixels12):
    path = write_dicom(tmp_path / "video.dcm", pixels12)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds.save_as(path)
    _assert_read_error(path, "cannot decode")


def test_compressed_syntax_without_its_plugin(tmp_path, pixels12, monkeypatch):
    path = write_dicom(tmp_path / "j2k.dcm", pixels12, transfer_syntax=JPEG2000Lossless)
    monkeypatch.setattr(get_decoder(JPEG2000Lossless), "_available", {})
    _assert_read_error(path, "JPEG 2000")


def test_real_mias_png(mias_root):
    m = read_image(mias_root / "images/mdb001.png")
    assert m.shape == (1024, 1024) and m.pixels.dtype == np.uint8


def test_raw_dicom_without_preamble(tmp_path, pixels12):
    ds = pydicom.dcmread(write_dicom(tmp_path / "a.dcm", pixels12))
    ds.preamble, ds.file_meta = None, pydicom.dataset.FileMetaDataset()
    pydicom.dcmwrite(tmp_path / "raw", ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert (tmp_path / "raw").read_bytes()[128:132] != b"DICM"
    assert np.array_equal(read_image(tmp_path / "raw").pixels, pixels12)
