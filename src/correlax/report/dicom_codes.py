"""The codes the DICOM outputs use: SNOMED CT and DCM wherever they name the concept, a private scheme otherwise.

Only the two map-peak concepts (the peak of CorRELAX's prediction map and of its correlation map) have no
standard code; they use the private scheme ``99CORRELAX``, declared in each object's Coding Scheme
Identification Sequence.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from correlax import labels as lb

PRIVATE_SCHEME = "99CORRELAX"
PRIVATE_SCHEME_NAME = "CorRELAX explanation maps"

# VinDr-Mammo's findings (correlax.labels) by the concepts of CID 6054 "Breast Imaging Finding" and SNOMED CT
FINDINGS: dict[str, Code] = {
    lb.MASS: codes.SCT.Mass,  # 4147007
    lb.CALCIFICATION: codes.SCT.CalcificationOfBreast,  # 309587003
    lb.ASYMMETRY: codes.SCT.AsymmetricBreastTissue,  # 129790003
    lb.ARCHITECTURAL_DISTORTION: codes.SCT.ArchitecturalDistortionOfBreast,  # 129792006
    lb.LYMPH_NODE: codes.SCT.LymphNode,  # 59441001
    lb.SKIN_THICKENING: codes.SCT.SkinThickeningOfBreast,  # 129797000
    lb.RETRACTION: codes.SCT.SkinRetractionOfBreast,  # 129796009
}
NO_FINDING = codes.DCM.NoAbnormality  # 111286, the value of "Finding" (DCM 121071) when nothing is called
FINDING = codes.DCM.Finding
PROBABILITY = codes.DCM.Probability  # 122157
BREAST = codes.SCT.Breast  # 76752008
LATERALITY: dict[str, Code] = {"L": codes.SCT.Left, "R": codes.SCT.Right, "B": codes.SCT.RightAndLeft}
NO_UNITS = Code("1", "UCUM", "no units")
PEAK_CONCEPTS: dict[str, Code] = {
    "prediction": Code("prediction-peak", PRIVATE_SCHEME, "Peak of the CorRELAX prediction map"),
    "corr_pred": Code("corr_pred-peak", PRIVATE_SCHEME, "Peak of the CorRELAX correlation map"),
}


def finding_code(label: str) -> Code:
    """The standard code of a finding label; ValueError for a label without one (no_finding is not a finding)."""
    if label not in FINDINGS:
        raise ValueError(f"{label!r} has no finding code; findings: {', '.join(FINDINGS)}")
    return FINDINGS[label]


def source_laterality(ds: Dataset) -> str:
    """The image's laterality (Image Laterality, else the series' Laterality): "L", "R", "B" or ""."""
    value = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).strip().upper()
    return value if value in LATERALITY else ""


def private_scheme():
    """The Coding Scheme Identification item of the private scheme (highdicom's)."""
    import highdicom as hd

    return hd.coding_schemes.CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME, name=PRIVATE_SCHEME_NAME, responsible_organization="correlax"
    )
