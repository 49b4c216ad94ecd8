"""Synthetic mammograms: the embedded default data set, so that the demo and the tests need no download.

- :func:`make_synthetic_dataset` writes seeded four-view exams in the VinDr-Mammo layout;
- :func:`synth_breast`, :func:`add_mass`, :func:`add_calcification_cluster` return arrays (no files).
"""

from correlax.data.synthetic.anatomy import (
    BreastPhantom,
    image_shape,
    power_law_noise,
    synth_breast,
    synth_phantom,
    to_uint16,
)
from correlax.data.synthetic.dataset import (
    BREAST_COLUMNS,
    FINDING_COLUMNS,
    SyntheticFinding,
    SyntheticImage,
    make_synthetic_dataset,
    pixel_spacing,
    synth_image,
    synth_study,
)
from correlax.data.synthetic.lesions import (
    MASS_KINDS,
    add_calcification_cluster,
    add_mass,
)

__all__ = [
    "BREAST_COLUMNS",
    "FINDING_COLUMNS",
    "MASS_KINDS",
    "BreastPhantom",
    "SyntheticFinding",
    "SyntheticImage",
    "add_calcification_cluster",
    "add_mass",
    "image_shape",
    "make_synthetic_dataset",
    "pixel_spacing",
    "power_law_noise",
    "synth_breast",
    "synth_image",
    "synth_phantom",
    "synth_study",
    "to_uint16",
]
