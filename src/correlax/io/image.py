"""The one image type every reader returns."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from correlax.errors import FileProblem


# Default bound on rows x columns x frames, checked from the header before decoding. Reading and preparing cost at
# most about 17 MB per stored megapixel (benchmarks/memory.py), so a 100 MP image stays under 2 GB; what the network
# then sees is bounded by correlax.preprocess.MAX_PREPARED_PIXELS (docs/bad-input.md, Memory).
MAX_PIXELS = 100_000_000


class ImageReadError(FileProblem):
    """An image file could not be read. The message names the file and the cause."""


@contextmanager
def errors_named(path: Path, failure: str) -> Iterator[None]:
    """Turn any exception inside the block into an :class:`ImageReadError` naming ``path`` (cause chained)."""
    try:
        yield
    except ImageReadError:
        raise
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc)) from exc
    except MemoryError as exc:
        raise ImageReadError(path, f"{failure}: out of memory") from exc
    except Exception as exc:  # noqa: BLE001 -- any decoder failure is this file's problem, named as such
        raise ImageReadError(path, f"{failure} ({type(exc).__name__}: {exc})") from exc


def check_pixel_count(path: Path, rows: int, columns: int, frames: int, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels, before anything is decoded."""
    count = rows * columns * frames
    if count > max_pixels:
        frames_text = f" x {frames} frames" if frames != 1 else ""
        raise ImageReadError(
            path, f"image too large: {columns} x {rows} pixels{frames_text} = {count:,}, above the limit of {max_pixels:,}"
        )


@dataclass
class Mammogram:
    """Pixels of one mammogram plus what is known about them.

    ``pixels`` is a 2-D array in display orientation: higher values are brighter (denser tissue),
    MONOCHROME1 already inverted, VOI LUT already applied. Its dtype keeps the stored dynamic range
    (uint16 / float32 for DICOM, uint8 or uint16 for raster files) until an explicit conversion.
    """

    pixels: np.ndarray
    path: Path
    spacing: tuple[float, float] | None = None  # (row, column) in mm
    laterality: str | None = None  # "L" or "R"
    view: str | None = None  # "CC", "MLO", ...
    bits: int = 8
    photometric: str = "MONOCHROME2"

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[0], self.pixels.shape[1]
