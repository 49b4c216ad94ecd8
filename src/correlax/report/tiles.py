"""Deep Zoom (DZI) pyramids: an image cut into tiles at every power-of-two scale, as OpenSeadragon reads them.

Level ``max_level = ceil(log2(longest side))`` is the full image, each level below half the one above (sizes
rounded up), level 0 one pixel. Tiles are ``tile_size`` square plus ``overlap`` pixels shared with each
neighbour; a viewer fetches only those of the level and region on screen. The levels below the first one that
fits in one tile may be left out (a viewer told that ``minLevel`` shrinks that tile itself): for a full-field
image they are 10 single-tile files of 15 per pyramid. Pure functions: the viewer writes the tiles
(``<name>_files/<level>/<col>_<row>.<format>``) and the descriptor (``<name>.dzi``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape

import cv2
import numpy as np


@dataclass(frozen=True)
class Tile:
    level: int
    col: int
    row: int
    pixels: np.ndarray


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """(width, height) of every level, level 0 first."""
    max_level = math.ceil(math.log2(max(width, height, 1)))
    scales = [2 ** (max_level - lv) for lv in range(max_level + 1)]
    return [(math.ceil(width / s), math.ceil(height / s)) for s in scales]


def one_tile_level(width: int, height: int, tile_size: int) -> int:
    """The finest level that is a single tile."""
    return max(lv for lv, (w, h) in enumerate(level_sizes(width, height)) if w <= tile_size and h <= tile_size)


def tile_spans(length: int, tile_size: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) of each tile along one axis of a level ``length`` pixels long."""
    return [(max(0, i * tile_size - overlap), min(length, (i + 1) * tile_size + overlap))
            for i in range(math.ceil(length / tile_size))]  # fmt: skip


def dzi_tiles(image: np.ndarray, tile_size: int, overlap: int, min_level: int = 0) -> Iterator[Tile]:
    """Every tile of ``image`` (H, W) or (H, W, C) from the full-resolution level down to ``min_level``. Each
    level is the one above shrunk by area averaging, so only two levels are held at a time."""
    sizes = level_sizes(image.shape[1], image.shape[0])
    level = image
    for lv in range(len(sizes) - 1, min_level - 1, -1):
        w, h = sizes[lv]
        if level.shape[:2] != (h, w):
            level = cv2.resize(level, (w, h), interpolation=cv2.INTER_AREA)
        for row, (y0, y1) in enumerate(tile_spans(h, tile_size, overlap)):
            for col, (x0, x1) in enumerate(tile_spans(w, tile_size, overlap)):
                yield Tile(lv, col, row, level[y0:y1, x0:x1])


def dzi_descriptor(width: int, height: int, tile_size: int, overlap: int, fmt: str) -> str:
    """The ``.dzi`` XML of a pyramid (Deep Zoom 2008 schema)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="{escape(fmt)}" Overlap="{overlap}" '
        f'TileSize="{tile_size}"><Size Width="{width}" Height="{height}"/></Image>\n'
    )
