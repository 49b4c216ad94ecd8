"""``CorrelaxExplainer``: CorRELAX maps for one pre-processed mammogram (captum-style API)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from correlax.explain.base import MapExplainer, batch_boxes, check_image
from correlax.explain.engine import WindowJob, WindowStats, window_statistics
from correlax.explain.forward import BatchRunner
from correlax.explain.kernel import overlap_average, place, smooth_grid
from correlax.explain.refine import coarse_to_fine
from correlax.explain.settings import CORRELAX_METHODS, CorrelaxSettings, RunSettings, correlax_methods
from correlax.explain.windows import (
    WindowGrid,
    breast_box_of,
    image_grey,
    pad_crop,
    window_fraction,
    window_view,
)
from correlax.geometry import PixelBox
from correlax.models.adapter import as_finding_model
from correlax.preprocess import breast_mask


@dataclass
class CorrelaxResult:
    """Per-window statistics on the (gh, gw) window grid and the whole-image maps (float32, (H, W) grid).
    Without masks (``settings.prediction_only``) only the prediction fields are filled; the others are None."""

    labels: tuple[str, ...]
    settings: CorrelaxSettings
    breast_box: PixelBox
    # window grid
    window_prediction: np.ndarray  # (L, gh, gw)
    window_tissue: np.ndarray  # (gh, gw) fraction of breast pixels
    window_masks: np.ndarray  # (gh, gw) masks run (0: skipped)
    # whole-image maps
    prediction: np.ndarray  # (L, H, W)
    passes: int = 0  # forward passes run (unmasked + masked)
    seconds: float = 0.0
    # what the masks give: window grid
    window_corr_pred: np.ndarray | None = None  # (L, gh, gw)
    window_corr_partial: np.ndarray | None = None  # (L, gh, gw) given the hidden tissue fraction t
    window_cov_pred: np.ndarray | None = None  # (L, gh, gw) covariance of d and P_c
    window_corr_tissue_dist: np.ndarray | None = None  # (gh, gw) Pearson(t, d): the confound's grip on d
    window_corr_tissue_pred: np.ndarray | None = None  # (L, gh, gw) Pearson(t, P_c): its grip on each class
    window_corr_dist: np.ndarray | None = None  # (gh, gw)
    window_mean_dist: np.ndarray | None = None  # (gh, gw) mean d_k over the window's masks
    # finer-map cell sums, per window: Σ d_k g_k, Σ (d_k − 1)² g_k, Σ P_k,c g_k, Σ g_k
    cell_relax_sum: np.ndarray | None = None  # (gh, gw, g, g)
    cell_relax_sq_sum: np.ndarray | None = None  # (gh, gw, g, g)
    cell_rise_sum: np.ndarray | None = None  # (L, gh, gw, g, g)
    cell_mask_sum: np.ndarray | None = None  # (gh, gw, g, g)
    # what the masks give: whole-image maps
    corr_pred: np.ndarray | None = None  # (L, H, W)
    corr_partial: np.ndarray | None = None  # (L, H, W) the partial correlation map, t regressed out of d and P_c
    cov_pred: np.ndarray | None = None  # (L, H, W) the covariance map: r(d, P_c) · sd(d) · sd(P_c), smoothed alike
    corr_dist: np.ndarray | None = None  # (H, W)
    relax: np.ndarray | None = None  # (H, W)
    relax_centred: np.ndarray | None = None  # (H, W) relax less each window's mean d: Σ (d_k − d̄) m_k / Σ m_k
    relax_uncertainty: np.ndarray | None = None  # (H, W) RELAX's uncertainty: Σ (d_k − relax)² m_k / Σ m_k, per window
    rise: np.ndarray | None = None  # (L, H, W)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array field by name (for saving)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}


def tissue_mask(image: torch.Tensor) -> torch.Tensor:
    """Breast pixels of a network input (:func:`correlax.preprocess.breast_mask`, as for the breast box)."""
    return torch.from_numpy(breast_mask(image_grey(image)))


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class CorrelaxExplainer(MapExplainer):
    """CorRELAX for a correlax model (:mod:`correlax.models.contract`) or any classifier returning logits.

    ``labels``: one name per logit (default: ``model.labels``); ``feature_layer``: the module (or its dotted name)
    whose output is the representation, hooked as pytorch-grad-cam's ``target_layers`` (default: timm's
    ``forward_features``/``forward_head``, or a model returning ``(logits, features)``); ``activation``: "sigmoid"
    (multi-label) or "softmax". One probe forward checks all this (:func:`correlax.models.adapter.as_finding_model`),
    and the explainer runs a copy sharing the model's weights: the caller's model keeps its mode and memory format.
    ``mask_bank``: optional fixed (K, g, g) cell grids used for every window instead of random draws;
    ``run``: how the network runs (batch size, channels-last, compile, backend), which changes no number.
    Its map-store entry is the whole :class:`CorrelaxResult` (window statistics included).
    """

    name = "correlax"
    methods = CORRELAX_METHODS

    def __init__(
        self,
        model: nn.Module,
        settings: CorrelaxSettings | None = None,
        mask_bank: torch.Tensor | None = None,
        run: RunSettings | None = None,
        *,
        labels: Sequence[str] | None = None,
        feature_layer: str | nn.Module | None = None,
        activation: str = "sigmoid",
    ) -> None:
        self.settings = settings or CorrelaxSettings()
        s = self.settings
        if mask_bank is not None and tuple(mask_bank.shape) != (s.n_masks, s.grid, s.grid):
            raise ValueError(f"mask_bank must have shape {(s.n_masks, s.grid, s.grid)}, got {tuple(mask_bank.shape)}")
        self.model = as_finding_model(model, labels, feature_layer, activation, probe_size=s.window)
        self.labels = self.model.labels
        self.methods = correlax_methods(s)
        self.mask_bank = mask_bank
        self.run = run or RunSettings()
        self.runner = BatchRunner(self.model, s, self.run)

    @property
    def device(self) -> torch.device:
        return self.runner.device

    def explain(
        self,
        image: torch.Tensor,
        breast_box: PixelBox | Sequence[PixelBox | None] | None = None,
        tissue: torch.Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CorrelaxResult | list[CorrelaxResult]:
        """CorRELAX statistics and maps of one image (3, H, W) in [0, 1], or a list of them for a batch
        (B, 3, H, W) (``breast_box`` then None or one per image; ``tissue`` None).

        ``breast_box`` (x0, y0, x1, y1, exclusive end) defaults to the largest Otsu component;
        ``tissue`` (H, W) bool, the breast pixels for ``min_tissue``, defaults to the Otsu mask.
        ``progress(done, total)``: forward passes run so far, of at most windows × (1 + masks).
        """
        if image.ndim == 4 and tissue is None:
            return [self.explain(one, box, progress=progress) for one, box in zip(image, batch_boxes(image, breast_box))]
        check_image(image)
        return self._explain_image(image, breast_box, tissue, progress)

    def _explain_image(
        self,
        image: torch.Tensor,
        breast_box: PixelBox | None,
        tissue: torch.Tensor | None,
        progress: Callable[[int, int], None] | None,
    ) -> CorrelaxResult:
        t0 = time.perf_counter()
        passes0 = self.runner.passes
        s = self.settings
        _, h, w = image.shape
        grid = WindowGrid(breast_box_of(image, breast_box), s.window, s.stride)
        gh, gw = grid.shape
        image = image.to(self.device, torch.float32)
        windows = window_view(pad_crop(image, grid), grid)
        if tissue is None:
            tissue = tissue_mask(image)
        tissue = tissue.to(self.device)
        frac = window_fraction(tissue, grid)
        tissue_windows = window_view(pad_crop(tissue[None].float(), grid), grid)[:, :, 0]
        active = torch.nonzero(frac.flatten() >= s.min_tissue).flatten() if s.min_tissue > 0 else torch.arange(
            gh * gw, device=self.device
        )
        statistics = coarse_to_fine if s.coarse_stride else window_statistics
        job = WindowJob(self.runner, windows, s, self.mask_bank, tissue_windows)
        stats = statistics(job, active, progress) if len(active) else None
        result = self._assemble(stats, active, grid, frac, (h, w))
        result.passes = self.runner.passes - passes0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        result.seconds = time.perf_counter() - t0
        return result

    def _assemble(
        self, stats: WindowStats | None, active: torch.Tensor, grid: WindowGrid, frac: torch.Tensor, hw: tuple[int, int]
    ) -> CorrelaxResult:
        """Scatter the active windows' statistics into the grid (0 elsewhere) and build the maps."""
        n_labels, g = len(self.labels), self.settings.grid
        gh, gw = grid.shape
        dev = self.device

        def scatter(values: torch.Tensor | None, *shape: int) -> torch.Tensor:
            full = torch.zeros(gh * gw, *shape, dtype=torch.float32 if values is None else values.dtype, device=dev)
            if values is not None:
                full[active] = values
            return full.view(gh, gw, *shape)

        get = (lambda name: getattr(stats, name)) if stats is not None else (lambda name: None)
        pred = scatter(get("prediction"), n_labels).permute(2, 0, 1)
        h, w = hw
        plain = dict(labels=self.labels, settings=self.settings, breast_box=grid.box, window_prediction=_numpy(pred),
                     window_tissue=_numpy(frac), window_masks=scatter(get("n_masks")).cpu().numpy().astype(np.int32))  # fmt: skip
        if self.settings.prediction_only:
            return CorrelaxResult(**plain, prediction=_numpy(place(smooth_grid(pred, grid), grid.box, h, w)))
        corr_pred = scatter(get("corr_pred"), n_labels).permute(2, 0, 1)
        corr_partial = scatter(get("corr_partial"), n_labels).permute(2, 0, 1)
        cov_pred = scatter(get("cov_pred"), n_labels).permute(2, 0, 1)
        corr_dist = scatter(get("corr_dist"))
        relax_sum = scatter(get("relax_sum"), g, g)
        relax_sq_sum = scatter(get("relax_sq_sum"), g, g)
        mean_dist = scatter(get("mean_dist"))
        rise_sum = scatter(get("rise_sum"), n_labels, g, g)
        mask_sum = scatter(get("mask_sum"), g, g)

        smoothed = smooth_grid(torch.cat([pred, corr_pred, corr_dist[None], corr_partial, cov_pred]), grid)
        centred, centred_sq = centred_relax_sums(relax_sum, relax_sq_sum, mask_sum, mean_dist)
        finer = overlap_average(torch.cat([relax_sum[:, :, None], centred[:, :, None], rise_sum], dim=2), mask_sum, grid)
        spread = overlap_average(torch.stack([centred, centred_sq], dim=2), mask_sum, grid, weighted_variance)
        maps = place(torch.cat([smoothed, finer, spread]), grid.box, h, w)
        L = n_labels
        return CorrelaxResult(
            **plain,
            prediction=_numpy(maps[:L]),
            window_corr_pred=_numpy(corr_pred),
            window_corr_partial=_numpy(corr_partial),
            window_cov_pred=_numpy(cov_pred),
            window_corr_tissue_dist=_numpy(scatter(get("corr_tissue_dist"))),
            window_corr_tissue_pred=_numpy(scatter(get("corr_tissue_pred"), n_labels).permute(2, 0, 1)),
            window_corr_dist=_numpy(corr_dist),
            window_mean_dist=_numpy(mean_dist),
            cell_relax_sum=_numpy(relax_sum),
            cell_relax_sq_sum=_numpy(relax_sq_sum),
            cell_rise_sum=_numpy(rise_sum.permute(2, 0, 1, 3, 4)),
            cell_mask_sum=_numpy(mask_sum),
            corr_pred=_numpy(maps[L : 2 * L]),
            corr_dist=_numpy(maps[2 * L]),
            corr_partial=_numpy(maps[2 * L + 1 : 3 * L + 1]),
            cov_pred=_numpy(maps[3 * L + 1 : 4 * L + 1]),
            relax=_numpy(maps[4 * L + 1]),
            relax_centred=_numpy(maps[4 * L + 2]),
            rise=_numpy(maps[4 * L + 3 : 5 * L + 3]),
            relax_uncertainty=_numpy(maps[5 * L + 3]),
        )

    def settings_key(self) -> dict:
        """The settings that make the maps, as the map store keys them."""
        return self.settings.to_dict()

    def attribute_image(self, image: torch.Tensor, breast_box: PixelBox | None) -> dict[str, np.ndarray]:
        """:class:`correlax.explain.base.Explainer`: per-class maps (L, H, W) by method name."""
        return method_maps(self._explain_image(image, breast_box, None, None).arrays())

    def entry(
        self, image: torch.Tensor, breast_box: PixelBox | None = None, progress: Callable[[int, int], None] | None = None
    ) -> dict[str, np.ndarray]:
        """The map store entry of one image: every map, the breast box and the labels."""
        check_image(image)
        result = self._explain_image(image, breast_box, None, progress)
        return {**result.arrays(), "breast_box": np.array(result.breast_box), "labels": np.array(result.labels)}

    def maps_of(self, entry: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The per-method maps (L, H, W) held in a map store entry."""
        return method_maps(entry)


def centred_relax_sums(
    relax_sum: torch.Tensor, relax_sq_sum: torch.Tensor, mask_sum: torch.Tensor, mean_dist: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window cell sums of d_k − d̄ and (d_k − d̄)² (float64, from Σ d g, Σ (d − 1)² g, Σ g and d̄).

    Centring removes what every mask of a window shares: a window that is mostly padding has d_k ≈ 1
    for every mask, so the plain relax map peaks there; centred, such a window contributes ≈ 0.
    """
    e = (mean_dist.double() - 1)[..., None, None]
    shifted = relax_sum - mask_sum  # Σ (d_k − 1) g_k
    return shifted - e * mask_sum, relax_sq_sum - 2 * e * shifted + e * e * mask_sum


def weighted_variance(means: torch.Tensor) -> torch.Tensor:
    """(B, 2, W, W) per-pixel weighted means of v and v² -> (B, 1, W, W) variance E[v²] − E[v]²."""
    return (means[:, 1:2] - means[:, 0:1] ** 2).clamp(min=0)


def weighted_prediction(prediction: np.ndarray, corr_pred: np.ndarray) -> np.ndarray:
    """The prediction map weighted by the positive part of the correlation map, P_c · max(CorrPred_c, 0): high
    only where the windows both read the class and lose it when the class's pixels are hidden (issue 11's
    lever; the paper scores the two maps apart)."""
    return (prediction * np.clip(corr_pred, 0, None)).astype(np.float32)


def method_maps(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The Pointing Game's method names for CorRELAX's whole-image maps (``CorrelaxResult.arrays()`` or a stored entry;
    one made without masks has the prediction map alone, one written before the covariance map lacks it)."""
    prediction = arrays["prediction"]
    if "corr_pred" not in arrays:
        return {"correlax-prediction": prediction}

    def per_class(name: str) -> np.ndarray:  # a class-agnostic map, the same for every class
        return np.broadcast_to(arrays[name], prediction.shape).copy()

    maps = {
        "correlax-prediction": prediction,
        "correlax-correlation": arrays["corr_pred"],
        "correlax-weighted": weighted_prediction(prediction, arrays["corr_pred"]),
        "correlax-partial": arrays["corr_partial"],
        "relax": per_class("relax"),
        "relax-centred": per_class("relax_centred"),
        "relax-uncertainty": per_class("relax_uncertainty"),
        "rise": arrays["rise"],
    }
    if "cov_pred" in arrays:
        maps["correlax-covariance"] = arrays["cov_pred"]
    return maps
