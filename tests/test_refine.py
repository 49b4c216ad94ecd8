"""Coarse-to-fine (correlax.explain.refine): equal to the full grid when everything is refined, refined where a
planted signal is, interpolated elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import BLOB_CENTRE, STATS, BlobNet, TinyNet, _image, blob_image, one_thread  # noqa: F401 (fixture)

from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.settings import RunSettings
from correlax.explain.refine import interpolate_coarse, refine_region


def test_refining_everything_equals_the_full_grid():
    model = TinyNet().eval()
    image = _image(64, 80)
    base = CorrelaxSettings(window=32, stride=8, n_masks=16)
    exact = CorrelaxExplainer(model, base, run=RunSettings(batch_size=64)).explain(image, (0, 0, 80, 64))
    refined = CorrelaxExplainer(model, base.replace(coarse_stride=16, refine_prediction=0.0), run=RunSettings(batch_size=64)).explain(image, (0, 0, 80, 64))
    assert refined.passes == exact.passes
    for name in STATS:
        np.testing.assert_allclose(getattr(refined, name), getattr(exact, name), atol=1e-5, err_msg=name)


def test_planted_signal_is_refined_and_the_rest_interpolated():
    h, w = 96, 128
    cy, cx = BLOB_CENTRE
    image = blob_image(h, w)
    base = CorrelaxSettings(window=32, stride=8, n_masks=32)
    exact = CorrelaxExplainer(BlobNet(), base, run=RunSettings(batch_size=512)).explain(image, breast_box=(0, 0, w, h))
    fast = CorrelaxExplainer(BlobNet(), base.replace(coarse_stride=32, refine_prediction=0.5), run=RunSettings(batch_size=512)).explain(image, (0, 0, w, h))
    ran = fast.window_masks > 0
    assert fast.passes < exact.passes / 2
    # every window whose centre is on the blob ran at the full stride, with the full grid's statistics
    centres = [(i, j) for i in range(ran.shape[0]) for j in range(ran.shape[1]) if (8 * i - cy) ** 2 + (8 * j - cx) ** 2 <= 36]
    assert centres and all(ran[c] for c in centres)
    np.testing.assert_allclose(fast.window_prediction[:, ran], exact.window_prediction[:, ran], atol=1e-6)
    # the others hold the coarse values interpolated: low, as the exact ones are there
    assert (fast.window_prediction[0, ~ran] < 0.5).all() and (exact.window_prediction[0, ~ran] < 0.5).all()
    peak = np.unravel_index(np.argmax(fast.prediction[0]), fast.prediction[0].shape)
    assert abs(peak[0] - cy) <= 8 and abs(peak[1] - cx) <= 8
    assert np.corrcoef(fast.prediction[0].ravel(), exact.prediction[0].ravel())[0, 1] > 0.95


def test_region_and_interpolation_on_the_grid():
    flags = torch.zeros(7, 9, dtype=torch.bool)
    flags[2, 4] = True
    region = refine_region(flags, 2)
    assert region.sum() == 9 and region[1:4, 3:6].all()
    coarse = torch.zeros(1, 7, 9)
    coarse[0, ::2, ::2] = torch.arange(4 * 5, dtype=torch.float32).view(4, 5)
    fine = interpolate_coarse(coarse, 2)[0]
    assert torch.equal(fine[::2, ::2], coarse[0, ::2, ::2])
    assert fine[1, 1] == pytest.approx((0 + 1 + 5 + 6) / 4)  # bilinear between four coarse windows


def test_coarse_stride_must_be_a_multiple_of_the_stride():
    with pytest.raises(ValueError, match="coarse_stride"):
        CorrelaxSettings(window=32, stride=8, coarse_stride=12)
