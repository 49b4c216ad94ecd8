"""The two kinds of box in the project, each with its own name and convention."""

from __future__ import annotations

AnnotationBox = tuple[float, float, float, float]
"""(xmin, ymin, xmax, ymax) in float pixels, closed (a pixel at xmax is inside): a finding's box as
annotations give it, and any region computed from one (crops, mapped boxes)."""

PixelBox = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in whole pixels, half-open (x1, y1 excluded), as slicing takes it: the breast box."""
