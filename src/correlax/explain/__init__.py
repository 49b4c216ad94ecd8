"""Explainers: CorRELAX (batched engine) and the baselines, all behind :class:`~correlax.explain.base.Explainer`.

The names below are imported on first use, so that listing the registered methods
(:mod:`correlax.explain.registry`) does not import torch.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "CorrelaxExplainer": "correlax.explain.explainer",
    "CorrelaxResult": "correlax.explain.explainer",
    "CorrelaxSettings": "correlax.explain.settings",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
