"""Per-image overlay figures of ``correlax explain`` (matplotlib's object API: no pyplot, no global backend)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure


def overlay_png(grey: np.ndarray, prediction: np.ndarray, correlation: np.ndarray | None, label: str, title: str) -> bytes:
    """One class's prediction and correlation maps over the image, side by side, each with a colour bar (the
    prediction map alone when there is no correlation map: CorRELAX run without masks)."""
    panels = [(prediction, "prediction", "inferno", (0, 1))]
    if correlation is not None:
        panels.append((correlation, "correlation", "RdBu_r", (-1, 1)))
    fig = Figure(figsize=(5 * len(panels), 5.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (heat, name, cmap, (lo, hi)) in zip(axes, panels):
        ax.imshow(grey, cmap="gray")
        im = ax.imshow(heat, cmap=cmap, vmin=lo, vmax=hi, alpha=0.45)
        ax.set_title(f"{name}: {label}")
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
