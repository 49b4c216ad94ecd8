"""The explainers by name, as timm's model registry: ``@register_explainer``, ``create_explainer`` and
``create_explainers``.

A factory takes keyword arguments, as timm's model entry points do, and declares only those it needs: ``model``
(with ``labels``, ``feature_layer``, ``activation`` for a classifier of one's own), ``settings`` and ``run`` for
CorRELAX, ``window`` and ``stride`` for the windowed baselines, ``labels`` and ``seed`` for the point baselines.
Registration records the method names it produces, so that a list of methods selects the explainers to build.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from correlax.explain.settings import CORRELAX_METHODS, PREDICTION_ONLY_METHODS, CorrelaxSettings, correlax_methods

if TYPE_CHECKING:  # the registry itself stays light: listing methods (CLI help) does not import torch
    from torch import nn

    from correlax.explain.base import Explainer
    from correlax.explain.settings import RunSettings

Factory = Callable[..., "Explainer"]
_REGISTRY: dict[str, tuple[tuple[str, ...], Factory]] = {}
MODEL_OPTIONS = ("labels", "feature_layer", "activation")  # how a classifier of one's own is read (models.adapter)


def register_explainer(name: str, methods: Sequence[str] | None = None) -> Callable[[Factory], Factory]:
    """Register ``factory(**kwargs)`` under ``name``, producing ``methods`` (default: the name)."""

    def add(factory: Factory) -> Factory:
        _REGISTRY[name] = (tuple(methods or (name,)), factory)
        return factory

    return add


def list_methods() -> tuple[str, ...]:
    """Every method name the registered explainers produce, in registration order."""
    return tuple(m for methods, _ in _REGISTRY.values() for m in methods)


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


def create_explainer(name: str, **kwargs) -> Explainer:
    """The explainer registered as ``name``, built from the keyword arguments its factory takes (others: TypeError)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown explainer {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name][1](**kwargs)


def create_explainers(
    methods: Sequence[str],
    model: nn.Module,
    settings: CorrelaxSettings,
    seed: int = 0,
    run: RunSettings | None = None,
    **model_options,
) -> list[Explainer]:
    """The explainers that produce ``methods`` (each built once, whatever share of its methods is asked for), each
    given the arguments its factory declares. ``model_options``: ``labels``, ``feature_layer``, ``activation``.
    Raises ValueError for a method no explainer gives with these settings (:func:`check_methods`)."""
    check_methods(methods, settings)
    unknown = set(model_options) - set(MODEL_OPTIONS)
    if unknown:
        raise TypeError(f"unknown model options {sorted(unknown)}; known: {', '.join(MODEL_OPTIONS)}")
    labels = model_options.get("labels", getattr(model, "labels", None))
    if labels is None:
        raise ValueError(f"{type(model).__name__} has no labels attribute: give labels=[...], one name per logit")
    offered = {"model": model, "settings": settings, "seed": seed, "run": run, "window": settings.window,
               "stride": settings.stride, **model_options, "labels": labels}  # fmt: skip
    return [factory(**arguments_for(factory, offered)) for produced, factory in _REGISTRY.values() if set(produced) & set(methods)]


def arguments_for(factory: Factory, offered: dict) -> dict:
    """The offered arguments that ``factory`` names, and the model options when it takes ``**model_options``."""
    params = inspect.signature(factory).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {k: v for k, v in offered.items() if k in params or (open_ended and k in MODEL_OPTIONS)}


@register_explainer("correlax", CORRELAX_METHODS)
def _correlax(model: nn.Module, settings: CorrelaxSettings, run: RunSettings | None = None, **model_options) -> Explainer:
    from correlax.explain.explainer import CorrelaxExplainer

    return CorrelaxExplainer(model, settings, run=run, **model_options)


@register_explainer("gradcam")
def _gradcam(model: nn.Module, window: int = 256, stride: int = 32, **model_options) -> Explainer:
    from correlax.explain.baselines import GradCamExplainer

    return GradCamExplainer(model, window, stride, **model_options)


@register_explainer("occlusion")
def _occlusion(model: nn.Module, window: int = 256, **model_options) -> Explainer:
    from correlax.explain.baselines import OcclusionExplainer

    # a W/4 patch every W/4 (16 occluded forwards per window): the occlusion baseline stays a small
    # share of the run instead of outweighing CorRELAX at few masks
    return OcclusionExplainer(model, window, patch_stride=window // 4, **model_options)


@register_explainer("center")
def _center(labels: Sequence[str]) -> Explainer:
    from correlax.explain.baselines import CenterExplainer

    return CenterExplainer(labels)


@register_explainer("random")
def _random(labels: Sequence[str], seed: int = 0) -> Explainer:
    from correlax.explain.baselines import RandomPointExplainer

    return RandomPointExplainer(labels, seed=seed)
