"""Multi-scale crops ("local views") of findings and normal tissue, and the Dataset over them."""

from correlax.crops.dataset import CropDataset, CropInfo, PreparedCache, PreparedEntry
from correlax.crops.masking import MaskAugmentation
from correlax.crops.sampler import (
    Crop,
    CropSettings,
    crop_labels,
    extract_crop,
    plan_crops,
    sample_box_crops,
    sample_normal_crops,
)

__all__ = [
    "MaskAugmentation",
    "Crop",
    "CropDataset",
    "CropInfo",
    "CropSettings",
    "PreparedCache",
    "PreparedEntry",
    "crop_labels",
    "extract_crop",
    "plan_crops",
    "sample_box_crops",
    "sample_normal_crops",
]
