"""Issue 25's levers against the hidden-tissue confound: the partial correlation given the hidden tissue fraction,
masks that hide only breast cells, and the pure parts they are built of."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference_correlax import reference_correlax
from test_engine import TinyNet, _image

from correlax.explain import CorrelaxExplainer, CorrelaxSettings
from correlax.explain.settings import RunSettings
from correlax.explain.stats import partial_correlation
from correlax.masks import cell_sums, mask_grids, scoped_mask_grids, upsample


def _breast(h: int, w: int) -> torch.Tensor:
    """A breast-like region: a half-disc on the left edge, so that many windows straddle its boundary."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (xx**2 + (yy - h / 2) ** 2) < (0.7 * w) ** 2


def test_partial_correlation_equals_the_correlation_of_residuals():
    rng = np.random.default_rng(0)
    z = rng.normal(size=500)
    x = 2 * z + rng.normal(size=500)
    y = -z + 0.5 * x + rng.normal(size=500)

    def residual(v):
        a = np.stack([np.ones_like(z), z], axis=1)
        return v - a @ np.linalg.lstsq(a, v, rcond=None)[0]

    expected = np.corrcoef(residual(x), residual(y))[0, 1]
    r = np.corrcoef([x, y, z])
    got = partial_correlation(torch.tensor(r[0, 1]), torch.tensor(r[0, 2]), torch.tensor(r[1, 2]))
    assert float(got) == pytest.approx(expected, abs=1e-12)
    # z explains x entirely: nothing left to correlate
    assert float(partial_correlation(torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.5))) == 0.0


def test_cell_sums_give_a_masks_share_of_any_pixel_quantity():
    x = torch.rand(3, 32, 32, dtype=torch.float64)
    grids = (torch.rand(3, 8, 8) < 0.5).float()
    direct = (x * upsample(grids, 32)[:, 0].double()).sum(dim=(1, 2))
    assert torch.allclose((grids.double() * cell_sums(x, 8)).sum(dim=(1, 2)), direct, atol=1e-10)


def test_scoped_masks_hide_only_breast_cells_and_balanced_ones_a_fixed_number():
    n = 200
    breast = torch.zeros(n, 8, 8, dtype=torch.bool)
    breast[:, :, :3] = True  # 24 breast cells per window
    breast[100:, :, 3] = True  # 32 for the second half
    w, k = torch.arange(n) % 7, torch.arange(n)
    for scope in ("tissue", "balanced"):
        g = scoped_mask_grids(3, w, k, 0.5, breast, scope)
        assert (g[~breast] == 1).all(), f"{scope}: a cell outside the breast was hidden"
    hidden = (scoped_mask_grids(3, w, k, 0.5, breast, "balanced") == 0).sum(dim=(1, 2))
    assert (hidden[:100] == 12).all() and (hidden[100:] == 16).all()
    drawn = (scoped_mask_grids(3, w, k, 0.5, breast, "tissue") == 0).sum(dim=(1, 2))
    assert drawn[:100].float().std() > 1  # the plain draw restricted to the breast still varies
    # restricted to the breast, the "tissue" scope is the paper's draw on those cells
    plain = mask_grids(3, w, k, 8, 0.5)
    assert torch.equal(scoped_mask_grids(3, w, k, 0.5, breast, "tissue")[breast], plain[breast])


@pytest.mark.parametrize("coarse", [None, 32])
def test_engine_partial_correlation_equals_the_textbook_residuals(coarse):
    """The engine's partial map, from running sums, against the per-mask regression of d and P_c on t."""
    model = TinyNet().eval()
    image = _image(64, 80)
    tissue = _breast(64, 80)
    settings = CorrelaxSettings(window=32, stride=16, n_masks=24, seed=5, coarse_stride=coarse,
                                refine_prediction=0.0 if coarse else None)  # fmt: skip
    result = CorrelaxExplainer(model, settings, run=RunSettings(batch_size=40)).explain(
        image, breast_box=(0, 0, 80, 64), tissue=tissue
    )

    def masks_for(w: int) -> np.ndarray:
        return mask_grids(5, torch.full((24,), w), torch.arange(24), 8, 0.5).numpy()

    ref = reference_correlax(model, image, (0, 0, 80, 64), 32, 16, masks_for, tissue=tissue.numpy())
    for name in ("window_corr_partial", "corr_partial", "window_corr_pred", "corr_pred", "window_cov_pred", "cov_pred"):
        np.testing.assert_allclose(getattr(result, name), ref[name], atol=1e-5, rtol=0, err_msg=name)
    assert np.abs(result.window_corr_tissue_dist).max() > 0.1  # t does move d here: the test is not between zeros
    assert np.abs(result.window_corr_partial - result.window_corr_pred).max() > 1e-3


def test_balanced_masks_hold_the_hidden_tissue_fixed():
    """With a fixed number of breast cells hidden, t hardly varies, so it cannot drive d and P_c together: the
    partial and the plain correlation agree far more closely than with the paper's masks."""
    model = TinyNet().eval()
    image = _image(64, 80)
    tissue = _breast(64, 80)
    gaps = {}
    for scope in ("all", "balanced"):
        s = CorrelaxSettings(window=32, stride=16, n_masks=24, seed=5, mask_scope=scope)
        r = CorrelaxExplainer(model, s).explain(image, breast_box=(0, 0, 80, 64), tissue=tissue)
        gaps[scope] = np.abs(r.window_corr_partial - r.window_corr_pred).mean()
    assert gaps["balanced"] < 0.5 * gaps["all"]


def test_a_mask_bank_cannot_follow_the_breast():
    s = CorrelaxSettings(window=32, stride=16, n_masks=4, mask_scope="balanced")
    with pytest.raises(ValueError, match="mask_scope"):
        CorrelaxExplainer(TinyNet().eval(), s, mask_bank=torch.ones(4, 8, 8)).explain(_image(40, 48))
    with pytest.raises(ValueError, match="mask_scope must be one of"):
        CorrelaxSettings(mask_scope="skin")
