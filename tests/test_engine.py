"""The batched CorRELAX engine against a plain one-window-at-a-time reference, and its parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_correlax import reference_correlax
from torch import nn

from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.settings import RunSettings
from correlax.explain.base import Explainer
from correlax.explain.kernel import OverlapAverage, overlap_kernel
from correlax.explain.windows import WindowGrid
from correlax.explain import engine
from correlax.masks import apply_masks, mask_grids, upsample
from correlax.explain.stats import PearsonSums
from correlax.models.contract import ClassifierOutput


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and far faster on a loaded 2-core machine (OpenMP spinning)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


STATS = (
    "window_prediction", "window_corr_pred", "window_corr_dist", "window_cov_pred", "prediction", "corr_pred",
    "corr_dist", "cov_pred",
    "relax", "relax_centred", "relax_uncertainty", "rise",
)  # fmt: skip


class TinyNet(nn.Module):
    """A small CNN. It computes in float64 and returns float32, so that its outputs do not depend on
    how the inputs are batched (float32 convolutions differ in the last bits between batch sizes)."""

    labels = ("a", "b", "c")

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, 3)
        self.double()

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        f = self.conv2(torch.relu(self.conv1(x.double()))).mean(dim=(2, 3))
        return ClassifierOutput((self.head(torch.relu(f)) * 3).float(), f.float())


def _image(h: int, w: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(3, h, w, generator=g) * 0.5
    img[:, h // 4 : h // 2, w // 3 : w // 2] += 0.5  # some structure
    return img.clamp(0, 1)


def _compare(result, ref: dict, atol: float = 1e-5) -> None:
    for name in STATS:
        got = getattr(result, name)
        assert got.shape == ref[name].shape, name
        np.testing.assert_allclose(got, ref[name], atol=atol, rtol=0, err_msg=name)


@pytest.mark.parametrize(
    "hw, box, window, stride, k, batch",
    [
        ((64, 80), (0, 0, 80, 64), 32, 8, 16, 50),  # whole image, windows over every border
        ((64, 80), (5, 3, 71, 60), 32, 16, 24, 37),  # crop not a multiple of S, batch not a multiple of K
        ((48, 40), (8, 0, 40, 48), 16, 8, 32, 1000),  # crop a multiple of S, one batch holds everything
        ((40, 56), (2, 4, 33, 27), 24, 4, 16, 64),  # W/S = 6
    ],
)
def test_engine_equals_reference_with_fixed_bank(hw, box, window, stride, k, batch):
    model = TinyNet().eval()
    image = _image(*hw)
    bank = (torch.rand(k, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    settings = CorrelaxSettings(window=window, stride=stride, n_masks=k)
    result = CorrelaxExplainer(model, settings, mask_bank=bank, run=RunSettings(batch_size=batch)).explain(image, breast_box=box)
    ref = reference_correlax(model, image, box, window, stride, lambda _: bank.numpy())
    _compare(result, ref)
    gh, gw = ref["window_corr_dist"].shape
    assert (result.window_masks == k).all()
    assert result.passes == gh * gw * (k + 1)
    assert np.abs(result.window_corr_pred).max() > 0.1  # the comparison is not between zeros


def test_engine_equals_reference_with_drawn_masks():
    """Default masks: fresh per window, drawn from the seed; the reference gets the same cells."""
    model = TinyNet().eval()
    image = _image(64, 80)
    settings = CorrelaxSettings(window=32, stride=16, n_masks=20, seed=7)
    result = CorrelaxExplainer(model, settings, run=RunSettings(batch_size=33)).explain(image, breast_box=(0, 0, 80, 64))

    def masks_for(w: int) -> np.ndarray:
        return mask_grids(7, torch.full((20,), w), torch.arange(20), 8, 0.5).numpy()

    _compare(result, reference_correlax(model, image, (0, 0, 80, 64), 32, 16, masks_for))


def test_masks_do_not_depend_on_batch_size():
    model = TinyNet().eval()
    image = _image(48, 48)
    a, b = (
        CorrelaxExplainer(model, CorrelaxSettings(window=16, stride=8, n_masks=16), run=RunSettings(batch_size=bs)).explain(image)
        for bs in (7, 256)
    )
    for name in STATS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-6)


def test_mask_grids_statistics():
    w = torch.arange(200).repeat_interleave(50)
    k = torch.arange(50).repeat(200)
    grids = mask_grids(0, w, k, 8, 0.5)
    assert grids.shape == (10000, 8, 8)
    assert set(grids.unique().tolist()) == {0.0, 1.0}
    assert abs(grids.mean().item() - 0.5) < 0.01
    assert abs(mask_grids(0, w, k, 8, 0.2).mean().item() - 0.2) < 0.01
    assert not torch.equal(mask_grids(1, w, k, 8, 0.5), grids)  # the seed matters
    assert torch.equal(mask_grids(0, w[:10], k[:10], 8, 0.5), grids[:10])


@pytest.mark.parametrize("size", [16, 64, 256, 60])
def test_upsampled_masks_are_bilinear_interpolation(size):
    grids = mask_grids(3, torch.arange(40), torch.arange(40), 8, 0.5)
    plain = F.interpolate(grids[:, None], size=(size, size), mode="bilinear", align_corners=False)
    masks = upsample(grids, size)
    assert masks.shape == (40, 1, size, size)
    if size % 8 == 0 and (size // 8) & (size // 8 - 1) == 0:  # dyadic weights: bit for bit
        assert torch.equal(masks, plain)
    torch.testing.assert_close(masks, plain, rtol=0, atol=1e-6)
    smooth = torch.rand(5, 8, 8, dtype=torch.float64)  # the finer maps upsample float cell sums
    torch.testing.assert_close(upsample(smooth, size), F.interpolate(smooth[:, None].float(), size=(size, size),
                               mode="bilinear", align_corners=False), rtol=0, atol=1e-6)  # fmt: skip


def test_overlap_average_equals_a_plain_loop_whatever_the_order_and_gaps():
    grid = WindowGrid((3, 5, 40, 31), window=8, stride=4)  # crop 26 x 37 -> 7 x 10 windows
    gh, gw = grid.shape
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(gh * gw, 2, 8, 8, generator=g)
    chosen = torch.randperm(gh * gw, generator=g)[: gh * gw * 2 // 3]  # gaps, shuffled
    stitched = OverlapAverage(grid, 2)
    for part in chosen.split(9):
        stitched.add(part, maps[part])
    hp, wp = grid.padded_shape
    total, count = torch.zeros(2, hp, wp), torch.zeros(1, hp, wp)
    for i in chosen.tolist():
        y, x = (i // gw) * 4, (i % gw) * 4
        total[:, y : y + 8, x : x + 8] += maps[i]
        count[:, y : y + 8, x : x + 8] += 1
    expected = (total / count.clamp(min=1))[:, 4 : 4 + 26, 4 : 4 + 37]
    torch.testing.assert_close(stitched.result(), expected)


def test_kernel_9x9_for_256_32():
    k = overlap_kernel(256, 32)
    assert k.shape == (9, 9)
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(k, k.T) and torch.allclose(k, k.flip(0)) and torch.allclose(k, k.flip(1))
    assert k.argmax().item() == 40  # the centre
    assert overlap_kernel(256, 64).shape == (5, 5) and overlap_kernel(32, 8).shape == (5, 5)


def test_pearson_sums_zero_variance_and_agreement():
    sums = PearsonSums.zeros(2, 2)
    x = torch.linspace(0, 1, 30)
    y = torch.stack([torch.full((30,), 0.25), x**2], dim=1)  # a constant series and a curved one
    sums.add(torch.zeros(30, dtype=torch.long), x, y)
    r = sums.correlation()
    assert r[0, 0] == 0.0  # zero variance -> 0, not NaN
    assert r[0, 1].item() == pytest.approx(np.corrcoef(x, x**2)[0, 1], abs=1e-12)
    assert (r[1] == 0).all()  # a window without samples


def test_tiny_but_real_variance_keeps_its_correlation():
    """q_k sits near 1 and may vary by ~1e-7 only: a real correlation, not a zero-variance series."""
    rng = np.random.default_rng(0)
    d = rng.normal(0.9, 0.02, 1280)
    q = 1 - 3e-7 + 1e-7 * (0.8 * (d - 0.9) / 0.02 + 0.6 * rng.normal(size=1280))  # variance ~1e-14
    assert q.var() < 1e-12  # the old absolute rule would have called it constant
    sums = PearsonSums.zeros(1, 1)
    sums.add(torch.zeros(1280, dtype=torch.long), torch.from_numpy(d) - 1, torch.from_numpy(q - 1)[:, None])
    assert sums.correlation()[0, 0].item() == pytest.approx(np.corrcoef(d, q)[0, 1], abs=1e-6)
    assert sums.correlation()[0, 0].item() > 0.7


def test_skipped_windows_are_zero_and_others_exact():
    model = TinyNet().eval()
    image = _image(64, 80)
    tissue = torch.zeros(64, 80, dtype=torch.bool)
    tissue[:, 40:] = True
    base = CorrelaxSettings(window=32, stride=16, n_masks=16)
    exact = CorrelaxExplainer(model, base, run=RunSettings(batch_size=64)).explain(image, (0, 0, 80, 64), tissue=tissue)
    fast = CorrelaxExplainer(model, base.replace(min_tissue=0.3), run=RunSettings(batch_size=64)).explain(image, (0, 0, 80, 64), tissue=tissue)
    run = fast.window_tissue >= 0.3
    assert 0 < run.sum() < run.size
    assert (fast.window_masks[~run] == 0).all() and (fast.window_prediction[:, ~run] == 0).all()
    np.testing.assert_allclose(fast.window_corr_pred[:, run], exact.window_corr_pred[:, run], atol=1e-6)
    assert fast.passes < exact.passes


def test_stopping_rule_uses_fewer_masks():
    model = TinyNet().eval()
    image = _image(64, 80)
    base = CorrelaxSettings(window=32, stride=16, n_masks=256)
    exact = CorrelaxExplainer(model, base, run=RunSettings(batch_size=128)).explain(image, (0, 0, 80, 64))
    fast = CorrelaxExplainer(model, base.replace(se_tol=0.15, mask_round=32), run=RunSettings(batch_size=128)).explain(image, (0, 0, 80, 64))
    assert fast.window_masks.min() >= 32 and (fast.window_masks % 32 == 0).all()
    assert fast.window_masks.max() <= 256 and fast.passes < exact.passes / 2
    r = np.corrcoef(fast.corr_pred.ravel(), exact.corr_pred.ravel())[0, 1]
    assert r > 0.8


class BlobNet(nn.Module):
    """Class 'blob' fires on bright pixels (a 5x5 box filter, max-pooled); class 'other' on the red-green
    difference, which is zero in a grey image. Features: the pooled bright-pixel responses."""

    labels = ("blob", "other")

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        grey = x.mean(1, keepdim=True)
        bright = torch.relu(torch.nn.functional.avg_pool2d(grey, 5, 1, 2) - 0.6)
        feats = torch.cat([bright.amax(dim=(2, 3)), bright.mean(dim=(2, 3)), grey.mean(dim=(2, 3))], dim=1)
        other = (x[:, 0] - x[:, 1]).abs().mean(dim=(1, 2))
        logits = torch.stack([40 * feats[:, 0] - 4, 10 * other - 4], dim=1)
        return ClassifierOutput(logits, feats)


BLOB_CENTRE = (60, 40)


def blob_image(h: int = 96, w: int = 128) -> torch.Tensor:
    """A grey textured image with a bright disc of radius 6 at ``BLOB_CENTRE`` (y, x)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grey = 0.3 + 0.05 * torch.sin(xx / 7.0) * torch.cos(yy / 5.0)
    cy, cx = BLOB_CENTRE
    grey = torch.where((yy - cy) ** 2 + (xx - cx) ** 2 <= 36, torch.tensor(1.0), grey)
    return grey.expand(3, h, w).clone()


def test_planted_signal_peaks_on_the_blob():
    h, w = 96, 128
    cy, cx = BLOB_CENTRE
    image = blob_image(h, w)
    settings = CorrelaxSettings(window=32, stride=8, n_masks=48)
    result = CorrelaxExplainer(BlobNet(), settings, run=RunSettings(batch_size=512)).explain(image, breast_box=(0, 0, w, h))

    def peak(m: np.ndarray) -> tuple[int, int]:
        return np.unravel_index(np.argmax(m), m.shape)

    for name in ("prediction", "corr_pred", "rise"):
        py, px = peak(getattr(result, name)[0])
        assert abs(py - cy) <= 8 and abs(px - cx) <= 8, (name, py, px)
    assert result.prediction[0].max() > 0.5
    assert result.corr_pred[0].max() > 0.5
    assert result.prediction[1].max() < 0.1  # the unrelated class stays off
    assert np.abs(result.corr_pred[1]).max() < 1e-6  # constant output: correlation 0 by definition


def test_attribute_is_an_explainer():
    model = TinyNet().eval()
    explainer = CorrelaxExplainer(model, CorrelaxSettings(window=16, stride=8, n_masks=8))
    assert isinstance(explainer, Explainer)
    maps = explainer.attribute(_image(40, 48))
    assert set(maps) == {"correlax-prediction", "correlax-correlation", "correlax-weighted", "correlax-partial",
                         "correlax-covariance", "relax", "relax-centred", "relax-uncertainty", "rise"}  # fmt: skip
    weighted = maps["correlax-prediction"] * np.clip(maps["correlax-correlation"], 0, None)
    np.testing.assert_allclose(maps["correlax-weighted"], weighted, rtol=1e-6)
    for m in maps.values():
        assert m.shape == (3, 40, 48) and m.dtype == np.float32 and np.isfinite(m).all()


class FlakyMemoryNet(TinyNet):
    """Raises CUDA out-of-memory for batches above a limit, to exercise the retry on any machine."""

    limit = 20

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("simulated")
        return super().forward(x)


def test_out_of_memory_halves_the_batch():
    image = _image(48, 48)
    settings = CorrelaxSettings(window=16, stride=8, n_masks=16)
    explainer = CorrelaxExplainer(FlakyMemoryNet().eval(), settings, run=RunSettings(batch_size=128))
    result = explainer.explain(image)
    assert explainer.runner.batch_size == 16
    plain = CorrelaxExplainer(TinyNet().eval(), settings, run=RunSettings(batch_size=128)).explain(image)
    for name in STATS:
        np.testing.assert_allclose(getattr(result, name), getattr(plain, name), atol=1e-6)


def test_stream_consumes_every_slice_in_order_and_raises_what_consume_raises():
    runner = CorrelaxExplainer(TinyNet().eval(), CorrelaxSettings(window=16, stride=8, n_masks=4), run=RunSettings(batch_size=3)).runner
    seen = []

    def build(a, b):
        return torch.rand(b - a, 3, 16, 16), (a, b)

    runner.stream(10, build, lambda a, b, probs, feats, extra: seen.append((a, b, extra, len(probs))))
    assert seen == [(a, min(a + 3, 10), (a, min(a + 3, 10)), min(3, 10 - a)) for a in range(0, 10, 3)]

    def failing(a, b, probs, feats, extra):
        if a == 3:
            raise RuntimeError("consume failed")

    with pytest.raises(RuntimeError, match="consume failed"):
        runner.stream(10, build, failing)


def test_bad_inputs_are_named():
    explainer = CorrelaxExplainer(TinyNet().eval(), CorrelaxSettings(window=16, stride=8, n_masks=8))
    with pytest.raises(ValueError, match="expected a float image"):
        explainer.explain(torch.zeros(1, 40, 40))
    with pytest.raises(ValueError, match="outside"):
        explainer.explain(_image(40, 40), breast_box=(0, 0, 50, 40))
    with pytest.raises(ValueError, match="stride"):
        CorrelaxSettings(window=16, stride=12)


@pytest.mark.parametrize("fill", ["mean", "blur"])
def test_other_mask_fills_equal_reference(fill):
    model = TinyNet().eval()
    image = _image(64, 80)
    bank = (torch.rand(16, 8, 8, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    settings = CorrelaxSettings(window=32, stride=16, n_masks=16, mask_fill=fill)
    result = CorrelaxExplainer(model, settings, mask_bank=bank, run=RunSettings(batch_size=50)).explain(image, breast_box=(5, 3, 71, 60))
    ref = reference_correlax(model, image, (5, 3, 71, 60), 32, 16, lambda _: bank.numpy(), fill=fill)
    _compare(result, ref)
    black = CorrelaxExplainer(model, settings.replace(mask_fill="black"), mask_bank=bank, run=RunSettings(batch_size=50)).explain(image, (5, 3, 71, 60))
    assert np.abs(result.window_corr_pred - black.window_corr_pred).max() > 1e-3  # the fill changes something


def test_black_fill_is_the_plain_product(monkeypatch):
    """The default fill runs exactly the masking of before the fill setting existed: x · m."""
    views = torch.rand(4, 3, 16, 16)
    masks = upsample(mask_grids(0, torch.arange(4), torch.arange(4), 8, 0.5), 16)
    assert torch.equal(apply_masks(views, masks, "black"), views * masks)
    model, image = TinyNet().eval(), _image(48, 48)
    settings = CorrelaxSettings(window=16, stride=8, n_masks=8)
    assert settings.mask_fill == "black"
    now = CorrelaxExplainer(model, settings).explain(image)
    monkeypatch.setattr(engine, "apply_masks", lambda v, m, *_: v * m)
    before = CorrelaxExplainer(model, settings).explain(image)
    for name, value in now.arrays().items():
        assert np.array_equal(value, before.arrays()[name]), name
    with pytest.raises(ValueError, match="mask_fill"):
        CorrelaxSettings(mask_fill="grey")


def test_centred_relax_leaves_out_the_padding():
    """Plain relax peaks where windows are mostly padding (every mask keeps d near 1); centred per window,
    the map peaks on the planted blob."""
    h, w = 96, 128
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    grey = torch.where((yy - 50) ** 2 + (xx - 70) ** 2 <= 36, 1.0, 0.3)
    image = grey.expand(3, h, w).clone()
    result = CorrelaxExplainer(BlobNet(), CorrelaxSettings(window=32, stride=8, n_masks=48)).explain(image, (0, 0, w, h))
    py, px = np.unravel_index(np.argmax(result.relax_centred), (h, w))
    assert abs(py - 50) <= 8 and abs(px - 70) <= 8, (py, px)
    py, px = np.unravel_index(np.argmax(result.relax), (h, w))
    assert abs(py - 50) > 16 or abs(px - 70) > 16, (py, px)  # what the centring fixes
    assert result.relax_uncertainty.min() >= 0 and result.relax_uncertainty.max() > 0


@pytest.mark.parametrize("coarse", [None, 32])
def test_without_masks_the_prediction_map_is_the_exact_one(coarse):
    """n_masks = 0: one unmasked pass per window, the same prediction map as with masks, and no other map."""
    model = TinyNet().eval()
    image = _image(64, 80)
    box = (0, 0, 80, 64)
    exact = CorrelaxExplainer(model, CorrelaxSettings(window=32, stride=8, n_masks=16), run=RunSettings(batch_size=64))
    alone = CorrelaxExplainer(model, CorrelaxSettings(window=32, stride=8, n_masks=0), run=RunSettings(batch_size=64))
    with_masks, without = exact.explain(image, box), alone.explain(image, box)
    np.testing.assert_allclose(without.prediction, with_masks.prediction, atol=1e-6, rtol=0)
    np.testing.assert_allclose(without.window_prediction, with_masks.window_prediction, atol=1e-6, rtol=0)
    assert without.passes == with_masks.window_prediction[0].size == with_masks.passes // 17
    assert without.corr_pred is None and without.relax is None and (without.window_masks == 0).all()
    assert alone.methods == ("correlax-prediction",)
    assert set(alone.attribute(image, box)) == {"correlax-prediction"}
    assert set(alone.maps_of(alone.entry(image, box))) == {"correlax-prediction"}
    if coarse:  # coarse-to-fine without masks: the prediction's threshold alone picks the windows to refine
        c2f = CorrelaxExplainer(model, CorrelaxSettings(window=32, stride=8, n_masks=0, coarse_stride=coarse,
                                                        refine_prediction=0.5), run=RunSettings(batch_size=64))  # fmt: skip
        result = c2f.explain(image, box)
        assert result.passes < without.passes
        assert np.corrcoef(result.prediction.ravel(), without.prediction.ravel())[0, 1] > 0.9


def test_masks_maps_cannot_be_asked_for_without_masks():
    from correlax.explain.registry import create_explainers

    settings = CorrelaxSettings(window=16, stride=8, n_masks=0)
    assert [e.methods for e in create_explainers(["correlax-prediction"], TinyNet(), settings)] == [("correlax-prediction",)]
    with pytest.raises(ValueError, match=r"\['correlax-correlation'\] need masks"):
        create_explainers(["correlax-prediction", "correlax-correlation"], TinyNet(), settings)
    with pytest.raises(ValueError, match="n_masks must be 0"):
        CorrelaxSettings(n_masks=1)
