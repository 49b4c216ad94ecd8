"""A miniature data set of synthetic four-view exams in the VinDr-Mammo layout.

``images/<study_id>/<image_id>.dicom`` (MONOCHROME2, 16-bit words holding 12 bits, Pixel Spacing
set) plus ``breast-level_annotations.csv`` and ``finding_annotations.csv`` with exactly VinDr's
columns, so that reading it exercises the real-data path (:func:`correlax.data.vindr.load_vindr`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from correlax.fileio import atomic_write_bytes, atomic_write_text
from correlax.data.synthetic.anatomy import BITS_STORED, synth_phantom, to_uint16
from correlax.data.synthetic.lesions import Box, add_calcification_cluster, add_mass

BREAST_COLUMNS = ("study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                  "breast_birads", "breast_density", "split")
FINDING_COLUMNS = BREAST_COLUMNS[:9] + ("finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax",
                                        "split")
VIEWS = (("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO"))
MASS, CALCIFICATION, NO_FINDING = "Mass", "Suspicious Calcification", "No Finding"
MASS_BIRADS = {"round": 3, "lobulated": 4, "low_contrast": 4, "spiculated": 5}
CALCIFICATION_BIRADS = 4


def pixel_spacing(size: int) -> float:
    """Pixel spacing in mm: 0.1 mm at a height of 2048 px, coarser for smaller images (same field of view)."""
    return 0.1 * 2048 / size


@dataclass
class SyntheticFinding:
    category: str  # a VinDr category name
    box: Box
    birads: int


@dataclass
class SyntheticImage:
    pixels: np.ndarray  # (H, W) uint16, 12 bits used
    laterality: str
    view: str
    findings: list[SyntheticFinding] = field(default_factory=list)


def _plan_breast(rng: np.random.Generator, normal_fraction: float) -> list[tuple[str, str | None]]:
    """Lesions of one breast, shown in both of its views: [(category, mass kind or None), ...]."""
    if rng.uniform() < normal_fraction:
        return []
    draw = rng.uniform()
    plan: list[tuple[str, str | None]] = []
    if draw < 0.6:
        plan.append((MASS, str(rng.choice(list(MASS_BIRADS)))))
    if draw >= 0.45:
        plan += [(CALCIFICATION, None)] * (2 if rng.uniform() < 0.2 else 1)
    return plan


def synth_image(rng: np.random.Generator, size: int, view: str, laterality: str, density: float,
                plan: list[tuple[str, str | None]]) -> SyntheticImage:
    """One view with the planned lesions placed at random, apart from each other."""
    phantom = synth_phantom(rng, size, view, laterality, density)
    pixels, where = to_uint16(phantom.pixels), phantom.lesion_zone.copy()
    image = SyntheticImage(pixels, laterality, view)
    for category, kind in plan:
        if category == MASS:
            pixels, box = add_mass(rng, pixels, where, kind=kind)
            birads = MASS_BIRADS[str(kind)]
        else:
            pixels, box = add_calcification_cluster(rng, pixels, where)
            birads = CALCIFICATION_BIRADS
        image.findings.append(SyntheticFinding(category, box, birads))
        x0, y0, x1, y1 = (round(v) for v in box)
        pad = size // 50
        where[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = False
    image.pixels = pixels
    return image


def synth_study(rng: np.random.Generator, size: int, normal_fraction: float = 0.3
                ) -> tuple[list[SyntheticImage], float]:
    """The four views of one woman (L/R × CC/MLO) and her breast density in [0, 1]."""
    density = float(rng.uniform(0.1, 0.9))
    plans = {side: _plan_breast(rng, normal_fraction) for side in ("L", "R")}
    return [synth_image(rng, size, view, side, density, plans[side]) for side, view in VIEWS], density


def density_category(density: float) -> str:
    return "DENSITY " + "ABCD"[min(3, int(density * 4))]


def dicom_bytes(pixels: np.ndarray, *, study_id: str, series_id: str, image_id: str, laterality: str,
                view: str, spacing: float) -> bytes:
    """A DICOM Part-10 file (digital mammography, for presentation, uncompressed) of ``pixels``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
    sop_instance = generate_uid(entropy_srcs=[image_id])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[study_id])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[series_id])
    ds.PatientID, ds.StudyID = study_id, study_id[:16]
    ds.Modality, ds.BodyPartExamined = "MG", "BREAST"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "correlax synthetic"
    ds.ImageLaterality, ds.ViewPosition = laterality, view
    # columns run towards the nipple on a left breast (chest wall at the left edge), away from it on a right one
    ds.PatientOrientation = ["A" if laterality == "L" else "P", ("R" if laterality == "L" else "L") if view == "CC" else "F"]
    ds.PixelSpacing = ds.ImagerPixelSpacing = [f"{spacing:.6g}", f"{spacing:.6g}"]
    ds.set_pixel_data(pixels, photometric_interpretation="MONOCHROME2", bits_stored=BITS_STORED,
                      generate_instance_uid=False)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_synthetic_dataset(out_dir: str | Path, n_images: int, seed: int = 0, size: int = 1536,
                           test_fraction: float = 0.25, normal_fraction: float = 0.3) -> Path:
    """Write ``ceil(n_images / 4)`` synthetic four-view exams under ``out_dir``; return ``out_dir``.

    Deterministic for a given ``seed`` and ``size``. Whole studies go to the "test" split
    (``test_fraction`` of them, at least one when there are two or more), the rest to "training".
    ``normal_fraction`` is the chance that a breast has no finding. Every file is written
    atomically and the CSVs last, so an interrupted run leaves no annotations to mislead a reader;
    rerunning it rewrites the same files.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    if not 0 <= test_fraction <= 1 or not 0 <= normal_fraction <= 1:
        raise ValueError(f"test_fraction and normal_fraction must lie in [0, 1], got {test_fraction}, {normal_fraction}")
    out_dir = Path(out_dir)
    n_studies = -(-n_images // len(VIEWS))
    n_test = round(test_fraction * n_studies)
    if n_studies >= 2:
        n_test = min(max(n_test, 1 if test_fraction > 0 else 0), n_studies - (1 if test_fraction < 1 else 0))
    test_studies = set(np.random.default_rng([seed, n_studies]).permutation(n_studies)[:n_test].tolist())
    spacing = pixel_spacing(size)

    breast_rows: list[dict[str, str]] = []
    finding_rows: list[dict[str, str]] = []
    for index in range(n_studies):
        rng = np.random.default_rng([seed, size, index])
        study_id = rng.bytes(16).hex()
        split = "test" if index in test_studies else "training"
        images, density = synth_study(rng, size, normal_fraction)
        side_birads = {side: max([f.birads for im in images if im.laterality == side for f in im.findings],
                                 default=1) for side in ("L", "R")}
        for image in images:
            series_id, image_id = rng.bytes(16).hex(), rng.bytes(16).hex()
            atomic_write_bytes(out_dir / "images" / study_id / f"{image_id}.dicom",
                               dicom_bytes(image.pixels, study_id=study_id, series_id=series_id, image_id=image_id,
                                           laterality=image.laterality, view=image.view, spacing=spacing))
            row = {"study_id": study_id, "series_id": series_id, "image_id": image_id,
                   "laterality": image.laterality, "view_position": image.view,
                   "height": str(image.pixels.shape[0]), "width": str(image.pixels.shape[1]),
                   "breast_birads": f"BI-RADS {side_birads[image.laterality]}",
                   "breast_density": density_category(density)}
            breast_rows.append({**row, "split": split})
            for finding in image.findings:
                finding_rows.append({**row, "finding_categories": str([finding.category]),
                                     "finding_birads": f"BI-RADS {finding.birads}",
                                     **dict(zip(("xmin", "ymin", "xmax", "ymax"), (f"{v:.2f}" for v in finding.box))),
                                     "split": split})
            if not image.findings:
                finding_rows.append({**row, "finding_categories": str([NO_FINDING]), "finding_birads": "",
                                     "xmin": "", "ymin": "", "xmax": "", "ymax": "", "split": split})
    atomic_write_text(out_dir / "finding_annotations.csv", _csv_text(FINDING_COLUMNS, finding_rows))
    atomic_write_text(out_dir / "breast-level_annotations.csv", _csv_text(BREAST_COLUMNS, breast_rows))
    return out_dir


def _csv_text(columns: tuple[str, ...], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
