"""Heatmap overlays as DICOM images of their own (Secondary Capture, RGB): what every PACS viewer displays.

The source's pixels (as the reader displays them) with one finding's map blended in, and
"NOT FOR DIAGNOSTIC USE" burned into the pixels and stated in the header (Burned In Annotation YES,
Image Comments, the series description). The Parametric Maps stay the values for software.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from matplotlib import colormaps
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless, generate_uid

from correlax.report.dicom_codes import source_laterality
from correlax.report.dicom_series import DEVICE, NOT_FOR_DIAGNOSIS, Series

COLORMAP = "turbo"
MAX_ALPHA = 0.6  # opacity of the colour where the map is at its maximum (1); 0 where it is 0 or below


def blend(grey: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W) uint8 image and (H, W) map in [0, 1] → (H, W, 3) uint8 RGB: the map's colour over the image,
    as opaque as the map is high (values ≤ 0 leave the image as it is). The map is quantised to 256 levels, so
    that every (grey, level) pair is looked up in one table: fast and small for a full-field mammogram."""
    level = np.round(np.clip(heat, 0.0, 1.0) * 255).astype(np.uint16)
    return _blend_table()[(grey.astype(np.uint16) << 8) | level]


@cache
def _blend_table() -> np.ndarray:
    """(256 * 256, 3) uint8: the blend of grey g and map level l at index g * 256 + l."""
    level = np.arange(256)
    colour = colormaps[COLORMAP](level / 255)[:, :3] * 255  # (256, 3)
    weight = (MAX_ALPHA * level / 255)[None, :, None]
    grey = level[:, None, None].astype(np.float64)
    return np.round((1 - weight) * grey + weight * colour[None]).astype(np.uint8).reshape(-1, 3)


def burn_in(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """``lines`` written in white on black boxes at the top of the side with less image content (the breast
    lies against one side), sized to the image and shrunk until the longest line fits its width."""
    out = rgb.copy()
    h, w = out.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.3, w / 900)
    widest = max(cv2.getTextSize(line, font, scale, 1)[0][0] for line in lines)
    scale *= min(1.0, 0.95 * w / widest)
    thickness = max(1, round(scale * 2))
    left = out[:, : w // 2].mean() <= out[:, w // 2 :].mean()
    y = 0
    for line in lines:
        (tw, th), base = cv2.getTextSize(line, font, scale, thickness)
        x0 = 0 if left else max(0, w - tw - 2 * thickness)
        cv2.rectangle(out, (x0, y), (x0 + tw + 2 * thickness, y + th + base + 2 * thickness), (0, 0, 0), -1)
        origin = (x0 + thickness, y + th + thickness)
        cv2.putText(out, line, origin, font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
        y += th + base + 2 * thickness
    return out


def overlay_image(src: Dataset, rgb: np.ndarray, title: str, series: Series,
                  instance_number: int) -> Dataset:  # fmt: skip
    """A Secondary Capture of ``rgb`` (the source's grid) in the source's study, deriving from the source."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    side = source_laterality(src)
    sc = hd.sc.SCImage.from_ref_dataset(
        src, rgb, "RGB", 8, "PATIENT", series.uid, series.number, generate_uid(), instance_number,
        DEVICE["manufacturer"],
        patient_orientation=("A", "F"), laterality=side if side in ("L", "R") else None,
        transfer_syntax_uid=RLELossless,
        series_description=series.description, manufacturer_model_name=DEVICE["manufacturer_model_name"],
        software_versions=DEVICE["software_versions"],
    )  # fmt: skip
    # highdicom 0.28 accepts single-letter orientations only, and oblique views have e.g. A\FR: the placeholder
    # above is replaced by the source's own value (empty when it has none: type 2 for a Secondary Capture)
    sc.PatientOrientation = src.get("PatientOrientation") or ""
    sc.BurnedInAnnotation = "YES"
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.ImageComments = f"{NOT_FOR_DIAGNOSIS}. {title}"[:10240]
    sc.DerivationDescription = f"CorRELAX heatmap blended into the source image; {NOT_FOR_DIAGNOSIS}"
    reference = Dataset()
    reference.ReferencedSOPClassUID, reference.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator = codes.DCM.SourceImageForImageProcessingOperation.value, "DCM"
    purpose.CodeMeaning = codes.DCM.SourceImageForImageProcessingOperation.meaning
    reference.PurposeOfReferenceCodeSequence = [purpose]
    sc.SourceImageSequence = [reference]
    return sc
