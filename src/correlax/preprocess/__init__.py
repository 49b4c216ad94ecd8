"""Pre-processing: pure array steps and the configurable ``prepare()`` pipeline."""

from correlax.preprocess.load import load_prepared
from correlax.preprocess.pipeline import MAX_PREPARED_PIXELS, PreparedGeometry, PreparedImage, PreprocessSettings, prepare
from correlax.preprocess.steps import (
    breast_bbox,
    breast_mask,
    breast_on_right,
    clahe_fusion,
    resample,
    to_uint8,
    to_unit_float,
)

__all__ = [
    "MAX_PREPARED_PIXELS",
    "PreparedGeometry",
    "PreparedImage",
    "PreprocessSettings",
    "breast_bbox",
    "breast_mask",
    "breast_on_right",
    "clahe_fusion",
    "load_prepared",
    "prepare",
    "resample",
    "to_uint8",
    "to_unit_float",
]
