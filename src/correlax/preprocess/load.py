"""Reading one file and preparing it: the step every command shares."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from correlax.io import MAX_PIXELS, read_image
from correlax.preprocess.pipeline import MAX_PREPARED_PIXELS, PreparedImage, PreprocessSettings, prepare


def load_prepared(
    path: str | Path,
    settings: PreprocessSettings,
    spacing: tuple[float, float] | float | None = None,
    max_pixels: int = MAX_PIXELS,
    max_prepared_pixels: int = MAX_PREPARED_PIXELS,
) -> PreparedImage:
    """Read ``path`` and pre-process it. ``spacing`` (mm; one number or (row, column)) stands in for
    files that state none (PNG, PGM), which a model that resamples to a pixel spacing needs. A file over
    ``max_pixels`` fails from its header, before decoding; one whose prepared image (at the model's pixel spacing)
    would exceed ``max_prepared_pixels`` fails before pre-processing: together they bound the memory.

    Raises ImageReadError for an unreadable file and ValueError when resampling needs a spacing that
    neither the file nor ``spacing`` gives."""
    mammogram = read_image(path, max_pixels=max_pixels)
    if mammogram.spacing is None and spacing is not None:
        pair = (float(spacing), float(spacing)) if isinstance(spacing, (int, float)) else tuple(map(float, spacing))
        mammogram = dataclasses.replace(mammogram, spacing=pair)
    return prepare(mammogram, settings, max_prepared_pixels)
