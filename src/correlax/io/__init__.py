"""Readers for mammograms: DICOM, PNG, TIFF, PGM, all returning :class:`Mammogram`."""

from correlax.io.image import ImageReadError, Mammogram

__all__ = ["ImageReadError", "Mammogram"]
