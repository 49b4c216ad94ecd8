"""Pearson correlations from running sums (docs/method.md §5): nothing per mask is kept.

For every window we correlate one series x (the representation similarity d_k) with several
series y (the class probabilities P_k,c and the prediction similarity q_k). The caller shifts
the values by a per-window constant close to their mean (Pearson is shift-invariant); with
float64 sums this keeps the textbook one-pass formula free of cancellation.
"""

from __future__ import annotations

import torch

# A series counts as constant (correlation 0) when its variance is below this fraction of its mean square
# about the shift: float64 rounding of the sums, not the series' absolute size. An absolute threshold
# (1e-12) would zero q_k, which sits near 1 and may vary by only ~1e-7 while carrying a real correlation.
RELATIVE_ZERO_VARIANCE = 1e-9


class PearsonSums:
    """Running sums of one x series and M y series per window: n, Σx, Σx², Σy, Σy², Σxy, packed in one (N, 3 + 3M)
    float64 tensor so that a batch of samples is added with a single ``index_add_``."""

    def __init__(self, packed: torch.Tensor) -> None:
        self.packed = packed
        m = (packed.shape[1] - 3) // 3
        self.n, self.sx, self.sxx = packed[:, 0], packed[:, 1], packed[:, 2]
        self.sy, self.syy, self.sxy = packed[:, 3 : 3 + m], packed[:, 3 + m : 3 + 2 * m], packed[:, 3 + 2 * m :]

    @classmethod
    def zeros(cls, n_windows: int, n_series: int, device: torch.device | str = "cpu") -> PearsonSums:
        return cls(torch.zeros(n_windows, 3 + 3 * n_series, dtype=torch.float64, device=device))

    def add(self, index: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add samples x (B,) and y (B, M) to the windows ``index`` (B,) (repeats allowed)."""
        x = x.double()[:, None]
        y = y.double()
        self.packed.index_add_(0, index, torch.cat([torch.ones_like(x), x, x * x, y, y * y, x * y], dim=1))

    def _moments(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n^2 cov, n^2 var(x) * n^2 var(y), and where a variance is zero; all (N, M)."""
        n = self.n[:, None]
        vx = (n * self.sxx[:, None] - self.sx[:, None] ** 2).expand_as(self.sy)
        vy = n * self.syy - self.sy**2
        cov = n * self.sxy - self.sx[:, None] * self.sy
        degenerate = (vx <= RELATIVE_ZERO_VARIANCE * n * self.sxx[:, None]) | (vy <= RELATIVE_ZERO_VARIANCE * n * self.syy)
        return cov, vx * vy, degenerate

    def correlation(self) -> torch.Tensor:
        """Pearson r of x with each y series, (N, M); 0 where either variance is zero."""
        cov, vxy, degenerate = self._moments()
        r = cov / torch.sqrt(torch.where(degenerate, 1.0, vxy))
        return torch.where(degenerate, 0.0, r).clamp(-1.0, 1.0)

    def covariance(self) -> torch.Tensor:
        """Population covariance of x with each y series over the samples, (N, M); 0 where either variance is zero
        (as :meth:`correlation`), and 0 for windows without samples."""
        cov, _, degenerate = self._moments()
        n2 = (self.n[:, None] ** 2).clamp(min=1)
        return torch.where(degenerate, 0.0, cov / n2)

    def standard_error(self) -> torch.Tensor:
        """Large-sample standard error (1 - r^2) / sqrt(n - 1) of each r, (N, M); 0 where r is 0 by definition."""
        cov, vxy, degenerate = self._moments()
        r2 = torch.where(degenerate, 0.0, cov**2 / torch.where(degenerate, 1.0, vxy)).clamp(max=1.0)
        se = (1 - r2) / torch.sqrt((self.n[:, None] - 1).clamp(min=1))
        return torch.where(degenerate, 0.0, se)


def partial_correlation(r_xy: torch.Tensor, r_xz: torch.Tensor, r_yz: torch.Tensor) -> torch.Tensor:
    """Partial correlation of x and y given z from the three Pearson correlations (broadcast):
    (r_xy − r_xz·r_yz) / √((1 − r_xz²)(1 − r_yz²)), the correlation of x and y once z is regressed out of both.
    Where z explains x or y entirely (a denominator below 1e-12) nothing is left to correlate: 0."""
    den = (1 - r_xz**2) * (1 - r_yz**2)
    ok = den > 1e-12
    r = (r_xy - r_xz * r_yz) / torch.sqrt(torch.where(ok, den, 1.0))
    return torch.where(ok, r, 0.0).clamp(-1.0, 1.0)
