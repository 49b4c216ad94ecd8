"""The one image type every reader returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from correlax.errors import FileProblem


class ImageReadError(FileProblem):
    """An image file could not be read. The message names the file and the cause."""


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
