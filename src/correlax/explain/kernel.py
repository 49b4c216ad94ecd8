"""From per-window values to maps on the image's pixel grid (docs/method.md §6), for any window W and stride S."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from correlax.masks import upsample
from correlax.explain.windows import WindowGrid


def overlap_kernel(window: int, stride: int) -> torch.Tensor:
    """κ(u, v) = IoU of two W×W squares whose centres differ by (u, v), for u, v = t·S with
    |t·S| <= W/2, normalised to sum 1: (2T+1, 2T+1) float64 with T = floor(W/2 / S) (9×9 for 256/32)."""
    t = (window // 2) // stride
    offsets = stride * torch.arange(-t, t + 1, dtype=torch.float64)
    side = window - offsets.abs()
    inter = side[:, None] * side[None, :]
    iou = inter / (2 * window**2 - inter)
    return iou / iou.sum()


def smooth_grid(values: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """(C, gh, gw) window values -> (C, Hc, Wc) map on the crop's pixels: full 2-D convolution
    with κ, bilinear resize to (Hc+W, Wc+W), then W/2 pixels dropped on each side."""
    kappa = overlap_kernel(grid.window, grid.stride).to(values.device, torch.float32)
    k = kappa.shape[0]
    conv = F.conv2d(values[:, None].float(), kappa[None, None], padding=k - 1)  # κ is symmetric
    hp, wp = grid.padded_shape
    big = F.interpolate(conv, size=(hp, wp), mode="bilinear", align_corners=False)[:, 0]
    half = grid.window // 2
    hc, wc = grid.crop_shape
    return big[:, half : half + hc, half : half + wc]


def place(crop_maps: torch.Tensor, box: tuple[int, int, int, int], height: int, width: int) -> torch.Tensor:
    """Put (C, Hc, Wc) crop maps back into (C, H, W) image coordinates, zero outside the box."""
    x0, y0, x1, y1 = box
    out = crop_maps.new_zeros(crop_maps.shape[0], height, width)
    out[:, y0:y1, x0:x1] = crop_maps
    return out


class OverlapAverage:
    """Full-resolution per-window maps averaged where windows overlap, fed a batch of windows at a time
    (the windows of each grid row go in with one ``F.fold`` spanning just them); ``result()`` is the (C, Hc, Wc)
    map on the crop's pixels. Pixels that no added window covers are 0."""

    def __init__(self, grid: WindowGrid, channels: int, device: torch.device | str = "cpu") -> None:
        self.grid = grid
        hp, wp = grid.padded_shape
        self.total = torch.zeros(channels, hp, wp, device=device)
        self.added = torch.zeros(grid.shape, device=device)  # (gh, gw): 1 where a window was added

    def add(self, ids: torch.Tensor, maps: torch.Tensor) -> None:
        """``maps`` (B, C, W, W) of the windows ``ids`` (B,), linear indices into the (gh, gw) grid, each added once."""
        _, gw = self.grid.shape
        w, s = self.grid.window, self.grid.stride
        ids = ids.to(self.total.device)
        maps = maps.to(self.total.device, torch.float32)
        self.added.view(-1)[ids] = 1
        rows = ids.div(gw, rounding_mode="floor")
        for row in rows.unique().tolist():
            take = rows == row
            cols = ids[take] % gw
            first, span = int(cols.min()), int(cols.max() - cols.min()) + 1
            if span == len(cols) and bool((cols[1:] > cols[:-1]).all()):
                run = maps[take]  # consecutive windows, in order
            else:  # gaps (skipped windows) or another order: place them on the span, zeros between
                run = maps.new_zeros(span, *maps.shape[1:])
                run[cols - first] = maps[take]
            width = (span - 1) * s + w
            folded = F.fold(run.reshape(span, -1).T[None], output_size=(w, width), kernel_size=w, stride=s)[0]
            self.total[:, row * s : row * s + w, first * s : first * s + width] += folded

    def result(self) -> torch.Tensor:
        w, s = self.grid.window, self.grid.stride
        covered = F.conv_transpose2d(self.added[None, None], self.added.new_ones(1, 1, w, w), stride=s)[0]
        count = torch.zeros_like(self.total[:1])
        count[:, : covered.shape[1], : covered.shape[2]] = covered  # windows covering each pixel
        half = self.grid.window // 2
        hc, wc = self.grid.crop_shape
        avg = self.total / count.clamp(min=1)
        return avg[:, half : half + hc, half : half + wc]


def overlap_average(
    num: torch.Tensor,
    den: torch.Tensor,
    grid: WindowGrid,
    per_window: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Finer maps: each window's pixel map is U(num)/U(den), the bilinear upsampling of its cell sums
    (U is linear, so this is the per-pixel Σ v_k m_k / Σ m_k); maps are averaged where windows overlap.
    Windows without masks (skipped) take no part: a pixel that only they cover is 0.
    ``per_window`` maps each window's (gw, C, W, W) weighted means to the (gw, C', W, W) values averaged
    instead (for a statistic that is not linear in the sums, such as a variance).

    num (gh, gw, C, g, g), den (gh, gw, g, g) -> (C', Hc, Wc) on the crop's pixels.
    """
    gh, gw, c_in, g, _ = num.shape
    c = per_window(num.new_zeros(1, c_in, 1, 1)).shape[1] if per_window is not None else c_in
    w = grid.window
    stitched = OverlapAverage(grid, c, num.device)
    ran = den.sum(dim=(2, 3)) > 0
    for i in range(gh):
        ids = torch.nonzero(ran[i]).flatten()
        if len(ids) == 0:
            continue
        up_num = upsample(num[i, ids].reshape(len(ids) * c_in, g, g), w).view(len(ids), c_in, w, w)
        up_den = upsample(den[i, ids], w)  # (n, 1, W, W)
        means = torch.where(up_den > 0, up_num / up_den.clamp(min=1e-12), 0.0)
        values = per_window(means) * (up_den > 0) if per_window is not None else means
        stitched.add(ids + i * gw, values)
    return stitched.result()
