"""The problems a data set's description can have, below the records that check themselves with them."""

from __future__ import annotations

from correlax.geometry import AnnotationBox


class ManifestError(ValueError):
    """A data set's description has problems; ``problems`` lists each one as 'file:line: what'."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the data set description:\n  {shown}{more}")


def box_problem(box: AnnotationBox, size: tuple[int, int] | None) -> str | None:
    """Why ``box`` is unusable on an image of ``size`` (height, width), or None when it is fine.

    A box that merely overhangs the border is fine here (see :func:`correlax.data.validate.clip_box`); an empty or inverted
    box, or one wholly outside the image, is not.
    """
    xmin, ymin, xmax, ymax = box
    if not xmin < xmax:
        return f"box has xmin >= xmax ({xmin:g} >= {xmax:g})"
    if not ymin < ymax:
        return f"box has ymin >= ymax ({ymin:g} >= {ymax:g})"
    if size is not None:
        height, width = size
        if xmax <= 0 or ymax <= 0 or xmin >= width or ymin >= height:
            return f"box {format_box(box)} lies wholly outside the {width}x{height} image"
    return None


def format_box(box: AnnotationBox) -> str:
    """(xmin, ymin, xmax, ymax) as a short text for messages."""
    return "(" + ", ".join(f"{v:g}" for v in box) + ")"
