"""The label vocabulary shared by every data set, model and report.

Names follow VinDr-Mammo's eight training labels (docs/method.md §9) in a short, file-safe
spelling. Data-set adapters map their own categories onto these.
"""

NO_FINDING = "no_finding"
MASS = "mass"
CALCIFICATION = "calcification"
ASYMMETRY = "asymmetry"
ARCHITECTURAL_DISTORTION = "architectural_distortion"
LYMPH_NODE = "lymph_node"
SKIN_THICKENING = "skin_thickening"
RETRACTION = "retraction"

LABELS: tuple[str, ...] = (
    NO_FINDING,
    MASS,
    CALCIFICATION,
    ASYMMETRY,
    ARCHITECTURAL_DISTORTION,
    LYMPH_NODE,
    SKIN_THICKENING,
    RETRACTION,
)

DISPLAY_NAMES: dict[str, str] = {
    NO_FINDING: "No Finding",
    MASS: "Mass",
    CALCIFICATION: "Suspicious Calcification",
    ASYMMETRY: "Asymmetries",
    ARCHITECTURAL_DISTORTION: "Architectural Distortion",
    LYMPH_NODE: "Suspicious Lymph Node",
    SKIN_THICKENING: "Skin Thickening",
    RETRACTION: "Retractions",
}


def check_label(label: str) -> str:
    """Return ``label`` if it is known, else raise ValueError listing the known labels."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; known labels: {', '.join(LABELS)}")
    return label
