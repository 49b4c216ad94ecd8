"""Settings of the CorRELAX engine (docs/method.md §4–§6), exact by default."""

from __future__ import annotations

from dataclasses import dataclass, replace

from correlax.settings import MASK_FILLS, MASK_SCOPES, DictSettings

PRECISIONS = ("fp32", "bf16", "fp16")
BACKENDS = ("torch", "onnx", "openvino")


@dataclass(frozen=True)
class CorrelaxSettings(DictSettings):
    """What CorRELAX computes: how to cut and mask the windows, and in which arithmetic (every field changes
    the numbers, so the map store keys on all of them; how the network runs is :class:`RunSettings`).

    The defaults reproduce the reference (every window, 1280 masks, stride 32, fp32).
    The fast-mode options each trade a measured amount of accuracy for speed:
    ``min_tissue`` skips windows whose fraction of breast pixels is below it (their statistics
    are 0, like background), ``se_tol`` draws masks in rounds of ``mask_round`` and stops a
    window once the standard error of all its correlations is below it, and a larger
    ``stride`` cuts fewer windows (the smoothing kernel follows W/S). ``n_masks`` = 0 runs only the
    unmasked pass of each window: the prediction map alone, exactly as with masks, at 1/(K + 1) of the passes.
    """

    window: int = 256
    stride: int = 32
    n_masks: int = 1280
    grid: int = 8
    keep_prob: float = 0.5
    seed: int = 0
    shared_masks: bool = False  # one set of K masks for every window instead of fresh masks per window
    precision: str = "fp32"
    min_tissue: float = 0.0
    se_tol: float = 0.0
    mask_round: int = 64
    mask_fill: str = "black"  # what hidden pixels show: black (the paper's), the window's mean, or a blurred copy
    # which cells a mask may hide: any (the paper's), only breast cells, or a fixed number of breast cells per window
    # (correlax.masks.scoped_mask_grids: issue 25's levers against the hidden-tissue confound)
    mask_scope: str = "all"
    # method settings, coarse-to-fine (correlax.explain.refine): with ``coarse_stride`` (a multiple of ``stride``)
    # the windows of the coarse grid run first; the full-stride windows run around a coarse window whose prediction
    # or |correlation| of a finding class lies in the top (1 - refine_prediction / refine_corr) of that class's
    # range on the coarse grid, or whose standard error reaches refine_se; the others take the coarse values
    # interpolated (None: that threshold off)
    coarse_stride: int | None = None
    refine_prediction: float | None = None
    refine_corr: float | None = None
    refine_se: float | None = None

    def __post_init__(self) -> None:
        if self.window <= 0 or self.window % 2:
            raise ValueError(f"window must be a positive even number of pixels, got {self.window}")
        if not 0 < self.stride <= self.window // 2:
            raise ValueError(f"stride must be in 1..window/2={self.window // 2}, got {self.stride}")
        if self.n_masks < 0 or self.n_masks == 1:
            raise ValueError(f"n_masks must be 0 (the prediction map alone) or at least 2 (a correlation), got {self.n_masks}")
        if self.grid < 1 or not 0 < self.keep_prob < 1:
            raise ValueError(f"need grid >= 1 and 0 < keep_prob < 1, got {self.grid}, {self.keep_prob}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.mask_fill not in MASK_FILLS:
            raise ValueError(f"mask_fill must be one of {MASK_FILLS}, got {self.mask_fill!r}")
        if self.mask_scope not in MASK_SCOPES:
            raise ValueError(f"mask_scope must be one of {MASK_SCOPES}, got {self.mask_scope!r}")
        if not 0 <= self.min_tissue <= 1 or self.se_tol < 0 or self.mask_round < 2:
            raise ValueError("need 0 <= min_tissue <= 1, se_tol >= 0 and mask_round >= 2")
        if self.coarse_stride is not None and (self.coarse_stride <= self.stride or self.coarse_stride % self.stride):
            raise ValueError(f"coarse_stride must be a multiple of stride={self.stride} above it, got {self.coarse_stride}")

    @property
    def prediction_only(self) -> bool:
        """No masks: the prediction map is all there is (no correlation, RELAX or RISE maps)."""
        return self.n_masks == 0

    def replace(self, **changes) -> CorrelaxSettings:
        """A copy with ``changes`` applied (the settings are frozen)."""
        return replace(self, **changes)



@dataclass(frozen=True)
class RunSettings(DictSettings):
    """How the network runs; none of these changes what CorRELAX computes (the map store ignores them).

    ``backend`` "onnx" runs the forward in ONNX Runtime (CPU, fp32 only; ``correlax.explain.backends``);
    its logits agree with PyTorch's to about 1e-6.
    """

    batch_size: int | None = None  # None: fitted to the device
    channels_last: bool = True  # cuDNN's fast layout; on CPU oneDNN gains a little from it too
    compile: bool = False  # torch.compile the network
    backend: str = "torch"

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "onnx" and self.compile:
            raise ValueError("the onnx backend runs without torch.compile")

    def replace(self, **changes) -> RunSettings:
        return replace(self, **changes)


CORRELAX_METHODS = ("correlax-prediction", "correlax-correlation", "correlax-weighted", "correlax-partial",
                    "correlax-covariance", "relax", "relax-centred", "relax-uncertainty", "rise")  # fmt: skip
PREDICTION_ONLY_METHODS = ("correlax-prediction",)  # what CorRELAX gives without masks (n_masks = 0)


def correlax_methods(settings: CorrelaxSettings) -> tuple[str, ...]:
    """The maps CorRELAX makes with ``settings``: all of them, or without masks the prediction map alone."""
    return PREDICTION_ONLY_METHODS if settings.prediction_only else CORRELAX_METHODS
