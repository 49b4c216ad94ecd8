"""A mixin for settings dataclasses that travel as JSON (checkpoints, outputs, benchmark files)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Self

MASK_FILLS = ("black", "mean", "blur")  # what a mask's hidden pixels show (correlax.masks.apply_masks)
MASK_SCOPES = ("all", "tissue", "balanced")  # which cells a mask may hide (correlax.masks.scoped_mask_grids)
CROP_SCALES = ("trained", "multi", "window")  # crops a model is scored on: its own protocol, the paper's, window-scale
MASK_AUG_CROPS = ("normal", "all")  # training crops that mask augmentation may mask (No Finding only, or all)


class DictSettings:
    """``to_dict`` / ``from_dict`` for a dataclass; unknown keys are an error, not silently dropped."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        unknown = set(data) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)
