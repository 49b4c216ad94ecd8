"""Hostile image files: sizes bounded from the header, every failure an ImageReadError naming the file."""

from __future__ import annotations

import logging
import struct
import zlib

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.uid import RLELossless

import correlax.io.raster
from correlax.io import MAX_PIXELS, ImageReadError, image_size, read_image
from dicom_factory import write_dicom


def png_header(path, width: int, height: int):
    """A PNG whose header declares width x height 8-bit grey pixels, with a tiny (incomplete) IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def read_error(path, **kwargs) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


def test_default_bound_is_100_megapixels():
    assert MAX_PIXELS == 100_000_000


def test_huge_png_refused_from_its_header(tmp_path):
    path = png_header(tmp_path / "bomb.png", 20000, 20000)
    assert path.stat().st_size < 200
    error = read_error(path)
    assert "20000 x 20000" in error.cause and "400,000,000" in error.cause and "100,000,000" in error.cause
    assert image_size(path) == (20000, 20000)  # the header alone, nothing decoded


def test_pixel_bound_is_a_keyword(tmp_path):
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "small.png")
    assert "1,200" in read_error(tmp_path / "small.png", max_pixels=1000).cause
    assert read_image(tmp_path / "small.png", max_pixels=1200).shape == (30, 40)


def test_huge_rle_dicom_refused_before_decompression(tmp_path):
    path = write_dicom(tmp_path / "bomb.dcm", np.zeros((8, 8), np.uint16), transfer_syntax=RLELossless)
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 65535
    ds.save_as(path)
    assert path.stat().st_size < 5000
    error = read_error(path)
    assert "65535 x 65535" in error.cause and "limit" in error.cause


def test_frames_count_in_the_dicom_bound(tmp_path):
    path = write_dicom(tmp_path / "frames.dcm", np.zeros((100, 100), np.uint16), extra={"NumberOfFrames": 20000})
    assert "20000 frames" in read_error(path).cause


def test_huge_tiff_refused_from_its_header(tmp_path):
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    with tifffile.TiffFile(path, mode="r+b") as tif:  # declare 12000 x 9000 over the 16 bytes of data
        tif.pages[0].tags["ImageLength"].overwrite(12000)
        tif.pages[0].tags["ImageWidth"].overwrite(9000)
    assert "9000 x 12000" in read_error(path).cause


def test_pillow_decompression_bomb_becomes_image_read_error(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)

    def bomb(_path):
        raise Image.DecompressionBombError("Image size (400000000 pixels) exceeds limit")

    monkeypatch.setattr(correlax.io.raster, "raster_shape", bomb)
    error = read_error(path)
    assert "400000000" in error.cause and isinstance(error.__cause__, Image.DecompressionBombError)


def test_any_decoder_exception_is_named_and_chained(tmp_path, monkeypatch):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16))

    def broken(*args, **kwargs):
        raise KeyError("codec table")

    monkeypatch.setattr(correlax.io.raster.tifffile, "imread", broken)
    error = read_error(path)
    assert "KeyError" in error.cause and isinstance(error.__cause__, KeyError)


def test_window_width_zero_names_the_tag(tmp_path):
    path = write_dicom(tmp_path / "w0.dcm", np.zeros((8, 8), np.uint16), window=(100, 0))
    assert "WindowWidth (0028,1051)" in read_error(path).cause


def test_values_beyond_bits_stored_are_refused_not_masked(tmp_path):
    pixels = np.array([[0, 4095, 5000, 65535]] * 4, np.uint16)
    error = read_error(write_dicom(tmp_path / "b12.dcm", pixels, bits_stored=12))
    assert "BitsStored (0028,0101) is 12" in error.cause and "65535" in error.cause
    fine = np.array([[0, 4095]] * 4, np.uint16)
    assert np.array_equal(read_image(write_dicom(tmp_path / "ok.dcm", fine, bits_stored=12)).pixels, fine)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_tiff_with_nan_or_inf_refused(tmp_path, bad):
    pixels = np.ones((6, 6), np.float32)
    pixels[2, 3] = bad
    tifffile.imwrite(tmp_path / "f.tif", pixels)
    assert "NaN or infinite" in read_error(tmp_path / "f.tif").cause


def test_header_size_of_dicom_and_pgm(tmp_path):
    assert image_size(write_dicom(tmp_path / "a.dcm", np.zeros((30, 20), np.uint16))) == (30, 20)
    Image.fromarray(np.zeros((7, 9), np.uint8)).save(tmp_path / "a.pgm")
    assert image_size(tmp_path / "a.pgm") == (7, 9)
    (tmp_path / "notes.txt").write_text("no image")
    with pytest.raises(ImageReadError, match="notes.txt"):
        image_size(tmp_path / "notes.txt")


def test_crop_dataset_skips_every_bad_file_by_name(tmp_path, caplog):
    from correlax.crops import CropDataset, PreparedCache
    from correlax.data.records import Finding, ImageRecord, Manifest
    from correlax.preprocess import PreprocessSettings

    write_dicom(tmp_path / "w0.dcm", np.zeros((64, 64), np.uint16), window=(100, 0))
    png_header(tmp_path / "bomb.png", 20000, 20000)
    records = [ImageRecord(name, name, name, findings=[Finding("mass", (1, 1, 9, 9))]) for name in ("w0.dcm", "bomb.png")]
    with caplog.at_level(logging.WARNING):
        dataset = CropDataset(Manifest(records, root=tmp_path), records, ("mass",), PreparedCache(PreprocessSettings()), 16)
    assert len(dataset) == 0 and [p for p, _ in dataset.failures] == [str(tmp_path / "w0.dcm"), str(tmp_path / "bomb.png")]
