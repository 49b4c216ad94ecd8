"""Checks shared by the data-set adapters: labels, boxes, image sizes, and one error listing every problem.

Adapters collect problems in a :class:`Problems` list while they read a whole file, then raise one
:class:`ManifestError` naming each file and line, so a user fixes a table in one pass.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from correlax.data.problems import ManifestError, box_problem, format_box
from correlax.data.records import Finding, ImageRecord
from correlax.geometry import AnnotationBox
from correlax.labels import DISPLAY_NAMES, LABELS

log = logging.getLogger(__name__)

# VinDr-Mammo's finding categories (data-formats.md) onto the shared vocabulary (docs/method.md §9).
VINDR_CATEGORIES: dict[str, str] = {
    "No Finding": "no_finding",
    "Mass": "mass",
    "Suspicious Calcification": "calcification",
    "Asymmetry": "asymmetry",
    "Focal Asymmetry": "asymmetry",
    "Global Asymmetry": "asymmetry",
    "Architectural Distortion": "architectural_distortion",
    "Suspicious Lymph Node": "lymph_node",
    "Skin Thickening": "skin_thickening",
    "Nipple Retraction": "retraction",
    "Skin Retraction": "retraction",
}

_LABEL_ALIASES: dict[str, str] = {
    **{name.casefold(): name for name in LABELS},
    **{display.casefold(): name for name, display in DISPLAY_NAMES.items()},
    **{category.casefold(): name for category, name in VINDR_CATEGORIES.items()},
}


class Problems(list[str]):
    """Problems found so far, each formatted as 'file:line: message'."""

    def add(self, file: str | Path, line: int | None, message: str) -> None:
        self.append(f"{file}:{line}: {message}" if line is not None else f"{file}: {message}")

    def raise_if_any(self) -> None:
        if self:
            raise ManifestError(self)


OUTSIDE_ROOT_HINT = "pass --allow-outside-root (allow_outside_root=True) to read it anyway"


def outside_root(path: str, root: Path) -> bool:
    """Whether ``path`` (relative to ``root``, or absolute) lies outside ``root``, judged on the spelling
    (``..`` parts, absolute paths), not on symbolic links: a data folder linked in from another disk is fine."""
    base = os.path.abspath(root)
    target = os.path.normpath(os.path.join(base, path))
    return os.path.commonpath([base, target]) != base


def canonical_label(name: str) -> str:
    """Map a canonical label, a display name or a VinDr-Mammo category (any case) to a canonical label.

    Raises ValueError naming the known labels when the name is not recognised.
    """
    try:
        return _LABEL_ALIASES[name.strip().casefold()]
    except KeyError:
        raise ValueError(f"unknown label {name!r}; known labels: {', '.join(LABELS)}") from None


def clip_box(box: AnnotationBox, size: tuple[int, int]) -> AnnotationBox:
    """Clip ``box`` to an image of ``size`` (height, width); coordinates are continuous, 0..width."""
    height, width = size
    xmin, ymin, xmax, ymax = box
    return (
        min(max(xmin, 0.0), width),
        min(max(ymin, 0.0), height),
        min(max(xmax, 0.0), width),
        min(max(ymax, 0.0), height),
    )


def checked_box(box: AnnotationBox, size: tuple[int, int] | None, where: str, problems: Problems, line: int | None) -> AnnotationBox | None:
    """Validate ``box``: record a problem and return None, or return it clipped (logging when clipping moved it)."""
    problem = box_problem(box, size)
    if problem:
        problems.add(where, line, problem)
        return None
    if size is None:
        return box
    clipped = clip_box(box, size)
    if clipped != tuple(box):
        log.warning(
            "%s:%s: box %s clipped to the %dx%d image: %s", where, line, format_box(box), size[1], size[0], format_box(clipped)
        )
    return clipped


BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


def row_box(
    row: dict, size: tuple[int, int] | None, where: str, problems: Problems, line: int | None
) -> tuple[bool, AnnotationBox | None]:
    """The box of a CSV row: (True, None) when its four columns are empty, (True, box) when valid (clipped),
    (False, None) after recording a problem."""
    coords = [row.get(k) or "" for k in BOX_COLUMNS]
    if not any(coords):
        return True, None
    try:
        raw = tuple(float(v) for v in coords)
    except ValueError:
        problems.add(where, line, f"box coordinates must be four numbers or all empty, got {coords}")
        return False, None
    not_finite = [f"{k}={v:g}" for k, v in zip(BOX_COLUMNS, raw) if not math.isfinite(v)]
    if not_finite:
        problems.add(where, line, f"box coordinates must be finite numbers, got {', '.join(not_finite)}")
        return False, None
    box = checked_box(raw, size, where, problems, line)  # type: ignore[arg-type]
    return box is not None, box


def add_finding(record: ImageRecord, finding: Finding, where: str | Path, line: int | None) -> None:
    """Append ``finding`` to ``record``; an exact repeat of one already there is warned about and kept once."""
    if finding in record.findings:
        log.warning("%s:%s: image %s: duplicate finding %s %s, kept once", where, line, record.image_id,
                    finding.label, format_box(finding.box) if finding.box else "(no box)")
        return
    record.findings.append(finding)


