"""Parametric Maps of the heatmaps on the source's stored pixel grid (uint16 with a real-world value mapping)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from correlax.labels import DISPLAY_NAMES
from correlax.report.dicom_codes import NO_UNITS
from correlax.report.dicom_series import DEVICE, Series

MAP_NAMES = {"prediction": "prediction map", "corr_pred": "correlation map"}
VALUE_RANGES = {"prediction": (0.0, 1.0), "corr_pred": (-1.0, 1.0)}
LEVELS = 65535  # maps are stored as uint16 with a linear real-world value mapping


def quantise(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Map values in ``value_range`` linearly onto uint16 0…65535 (clipped)."""
    lo, hi = value_range
    return np.round((np.clip(values, lo, hi) - lo) / (hi - lo) * LEVELS).astype(np.uint16)


def parametric_map(
    src: Dataset,
    stored: np.ndarray,
    name: str,
    label: str,
    series: Series,
    instance_number: int,
    spacing: tuple[float, float] | None,
) -> Dataset:
    """A Parametric Map of one class's map on the source's stored grid. ``spacing``: (row, column) mm of the
    stored grid, written as the Pixel Measures (None: unknown)."""
    import highdicom as hd

    lo, hi = VALUE_RANGES.get(name, (float(stored.min()), float(stored.max())))
    hi = hi if hi > lo else lo + 1.0  # a constant map of another method
    title = f"{DISPLAY_NAMES.get(label, label)} {MAP_NAMES.get(name, name)}"
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=name[:16], lut_explanation=f"CorRELAX {title}", unit=NO_UNITS,
        value_range=(0, LEVELS), intercept=lo, slope=(hi - lo) / LEVELS,
    )  # fmt: skip
    measures = None if spacing is None else hd.PixelMeasuresSequence(pixel_spacing=spacing, slice_thickness=None)
    window = hd.VOILUTTransformation(window_center=LEVELS / 2, window_width=LEVELS + 1)
    return _parametric_map_class()(
        [src], quantise(stored, (lo, hi)), series.uid, series.number, generate_uid(), instance_number, **DEVICE,
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        voi_lut_transformations=[window], content_label=f"{name}_{label}"[:16].upper(),
        content_description=f"CorRELAX {title}"[:64], series_description=series.description, pixel_measures=measures,
    )  # fmt: skip


@cache
def _parametric_map_class() -> type:
    import highdicom as hd

    class ParametricMap2D(hd.pm.ParametricMap):
        """highdicom's Parametric Map for a source without a frame of reference (DX/MG).

        highdicom 0.28 then indexes frames by Frame Label but writes neither the label nor the index value,
        and its own consistency check fails; this fills both in for the single frame before that check.
        """

        def _build_luts(self) -> None:
            index = self.get("DimensionIndexSequence")
            if index and index[0].DimensionIndexPointer == pydicom.tag.Tag("FrameLabel"):
                for item in self.PerFrameFunctionalGroupsSequence:
                    content = item.FrameContentSequence[0]
                    if not content.get("DimensionIndexValues"):
                        content.FrameLabel = self.ContentLabel
                        content.DimensionIndexValues = [1]
            super()._build_luts()

    return ParametricMap2D
