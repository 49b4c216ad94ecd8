"""Explainers: CorRELAX (batched engine) and the baselines, all behind :class:`~correlax.explain.base.Explainer`.

The names below are imported on first use, so that listing the registered methods
(:mod:`correlax.explain.registry`) does not import torch.
"""

from __future__ import annotations

from correlax.lazy import lazy_attributes

_LAZY = {
    "CorrelaxExplainer": "correlax.explain.explainer",
    "CorrelaxResult": "correlax.explain.explainer",
    "CorrelaxSettings": "correlax.explain.settings",
}
__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
