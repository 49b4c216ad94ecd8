"""Explainers: CorRELAX (batched engine) and the baselines, all behind :class:`~correlax.explain.base.Explainer`."""

from correlax.explain.explainer import CorrelaxExplainer, CorrelaxResult
from correlax.explain.settings import CorrelaxSettings

__all__ = ["CorrelaxExplainer", "CorrelaxResult", "CorrelaxSettings"]
