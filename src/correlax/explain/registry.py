"""The explainers by name, as timm's model registry: ``@register_explainer`` and ``create_explainers``.

A factory takes the model, the CorRELAX settings (the windowed baselines use the same window and
stride) and a seed, and returns an :class:`~correlax.explain.base.Explainer`; registration records
the method names it produces, so that a list of methods selects the explainers to build.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry itself stays light: listing methods (CLI help) does not import torch
    from torch import nn

    from correlax.explain.base import Explainer
    from correlax.explain.settings import CorrelaxSettings, RunSettings

CORRELAX_METHODS = ("correlax-prediction", "correlax-correlation", "correlax-weighted", "correlax-partial", "relax",
                    "relax-centred", "relax-uncertainty", "rise")  # fmt: skip
PREDICTION_ONLY_METHODS = ("correlax-prediction",)  # what CorRELAX gives without masks (n_masks = 0)

Factory = Callable[["nn.Module", "CorrelaxSettings", int, "RunSettings | None"], "Explainer"]
_REGISTRY: dict[str, tuple[tuple[str, ...], Factory]] = {}


def register_explainer(name: str, methods: Sequence[str] | None = None) -> Callable[[Factory], Factory]:
    """Register ``factory(model, settings, seed, run)`` under ``name``, producing ``methods`` (default: the name)."""

    def add(factory: Factory) -> Factory:
        _REGISTRY[name] = (tuple(methods or (name,)), factory)
        return factory

    return add


def list_methods() -> tuple[str, ...]:
    """Every method name the registered explainers produce, in registration order."""
    return tuple(m for methods, _ in _REGISTRY.values() for m in methods)


def correlax_methods(settings: CorrelaxSettings) -> tuple[str, ...]:
    """The maps CorRELAX makes with ``settings``: all of them, or without masks the prediction map alone."""
    return PREDICTION_ONLY_METHODS if settings.prediction_only else CORRELAX_METHODS


def available_methods(settings: CorrelaxSettings) -> tuple[str, ...]:
    """The methods the registered explainers give with ``settings``: all, less the CorRELAX maps it does not make."""
    not_made = set(CORRELAX_METHODS) - set(correlax_methods(settings))
    return tuple(m for m in list_methods() if m not in not_made)


def check_methods(methods: Sequence[str], settings: CorrelaxSettings) -> None:
    """ValueError naming the methods that are unknown, or that these settings cannot give."""
    unknown = set(methods) - set(list_methods())
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(list_methods())}")
    missing = set(methods) - set(available_methods(settings))
    if missing:
        raise ValueError(f"methods {sorted(missing)} need masks; with 0 masks CorRELAX gives {', '.join(PREDICTION_ONLY_METHODS)}")


def create_explainers(
    methods: Sequence[str], model: nn.Module, settings: CorrelaxSettings, seed: int = 0, run: RunSettings | None = None
) -> list[Explainer]:
    """The explainers that produce ``methods`` (each built once, whatever share of its methods is asked for).
    Raises ValueError for a method no explainer gives with these settings (:func:`check_methods`)."""
    check_methods(methods, settings)
    return [factory(model, settings, seed, run) for produced, factory in _REGISTRY.values() if set(produced) & set(methods)]


@register_explainer("correlax", CORRELAX_METHODS)
def _correlax(model: nn.Module, settings: CorrelaxSettings, seed: int, run: RunSettings | None) -> Explainer:
    from correlax.explain.explainer import CorrelaxExplainer

    return CorrelaxExplainer(model, settings, run=run)


@register_explainer("gradcam")
def _gradcam(model: nn.Module, settings: CorrelaxSettings, seed: int, run: RunSettings | None) -> Explainer:
    from correlax.explain.baselines import GradCamExplainer

    return GradCamExplainer(model, settings.window, settings.stride)


@register_explainer("occlusion")
def _occlusion(model: nn.Module, settings: CorrelaxSettings, seed: int, run: RunSettings | None) -> Explainer:
    from correlax.explain.baselines import OcclusionExplainer

    # a W/4 patch every W/4 (16 occluded forwards per window): the occlusion baseline stays a small
    # share of the run instead of outweighing CorRELAX at few masks
    return OcclusionExplainer(model, settings.window, patch_stride=settings.window // 4)


@register_explainer("center")
def _center(model: nn.Module, settings: CorrelaxSettings, seed: int, run: RunSettings | None) -> Explainer:
    from correlax.explain.baselines import CenterExplainer

    return CenterExplainer(model.labels)


@register_explainer("random")
def _random(model: nn.Module, settings: CorrelaxSettings, seed: int, run: RunSettings | None) -> Explainer:
    from correlax.explain.baselines import RandomPointExplainer

    return RandomPointExplainer(model.labels, seed=seed)
