"""Command-line options shared by the commands that run CorRELAX (``explain``, ``pointing-game``).

The geometry can be given in millimetres (``--window-mm``, ``--stride-mm``, ``--margin-mm``), which the
model's pixel spacing turns into pixels: the paper's geometry (window ≈ 25 mm, W/S = 8, Pointing Game
margin = stride ≈ 3 mm, docs/method.md §11) is the same millimetres on any data set.
"""

from __future__ import annotations

import argparse

from correlax.explain.settings import BACKENDS, PRECISIONS, CorrelaxSettings, RunSettings
from correlax.settings import MASK_FILLS, MASK_SCOPES

FAST_SE_TOL = 0.1  # the stopping rule whose loss the README reports (benchmarks/results/gpu-h200-trained-all.json)
WINDOW_PER_STRIDE = 8  # the reference's W/S (256 px windows every 32 px)


def add_correlax_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("CorRELAX (defaults: the reference's exact settings)")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--window", type=int, help="window side in pixels (default: the model's input size)")
    size.add_argument("--window-mm", type=float, help="window side in mm, at the model's pixel spacing")
    step = g.add_mutually_exclusive_group()
    step.add_argument("--stride", type=int, help=f"window stride in pixels (default: window / {WINDOW_PER_STRIDE})")
    step.add_argument("--stride-mm", type=float, help="window stride in mm, at the model's pixel spacing")
    g.add_argument("--masks", type=int, default=1280,
                   help="random masks per window; 0: the prediction map alone, one pass per window (default: %(default)s)")  # fmt: skip
    g.add_argument("--grid", type=int, default=8, help="mask grid cells per side (default: %(default)s)")
    g.add_argument("--keep-prob", type=float, default=0.5, help="probability that a cell is kept (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--precision", choices=PRECISIONS,
                   help="arithmetic of the network (default: fp32; with --fast bf16 on a GPU)")  # fmt: skip
    r = parser.add_argument_group("how the network runs (changes no number)")
    r.add_argument("--compile", action="store_true", help="torch.compile the network")
    r.add_argument("--batch-size", type=int, help="forward batch (default: fitted to the device's memory)")
    r.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="the network's forward in PyTorch, ONNX Runtime (CPU, fp32) or OpenVINO (CPU, fp32 or "
                        "--precision bf16, fast where the CPU has bf16 units); pip install 'correlax[cpu]'")  # fmt: skip
    g.add_argument("--min-tissue", type=float, default=0.0,
                   help="fast mode: skip windows with less than this fraction of breast pixels")  # fmt: skip
    g.add_argument("--se-tol", type=float,
                   help="fast mode: stop drawing masks once the correlations' standard error is below this"
                        f" (default: 0, every mask; {FAST_SE_TOL} with --fast)")  # fmt: skip
    g.add_argument("--fast", action="store_true",
                   help=f"the measured fast mode: mask stopping at --se-tol {FAST_SE_TOL} (and bf16 on a GPU), every window"
                        " and the same stride (README: its speed-up and its loss)")  # fmt: skip
    g.add_argument("--mask-round", type=int, default=64, help="masks per round with --se-tol (default: %(default)s)")
    g.add_argument("--coarse-stride", type=int,
                   help="coarse-to-fine: run this stride first (a multiple of the stride), refine around high windows")  # fmt: skip
    g.add_argument("--refine-prediction", type=float,
                   help="coarse-to-fine: refine where a finding's prediction is in the top (1 - this) of its range")  # fmt: skip
    g.add_argument("--refine-corr", type=float,
                   help="coarse-to-fine: refine where a finding's |correlation| is in the top (1 - this) of its range")  # fmt: skip
    g.add_argument("--refine-se", type=float, help="coarse-to-fine: refine where the standard error reaches this")
    g.add_argument("--mask-fill", choices=MASK_FILLS, default="black",
                   help="what the hidden pixels show (default: black, the paper's)")  # fmt: skip
    g.add_argument("--mask-scope", choices=MASK_SCOPES, default="all",
                   help="which cells a mask may hide: any (default, the paper's), only breast cells, or a fixed "
                        "number of breast cells per window (balanced)")  # fmt: skip


def to_pixels(mm: float, spacing: float | None, option: str) -> int:
    """Millimetres to an even number of pixels at ``spacing`` mm per pixel (at least 2)."""
    if spacing is None:
        raise ValueError(
            f"{option} needs the pixel spacing of the model's input, but this model keeps each file's own spacing "
            "(no target spacing); give the size in pixels instead"
        )
    return max(2, 2 * round(mm / spacing / 2))


def correlax_settings(
    args: argparse.Namespace, input_size: int, spacing: float | None = None, gpu: bool | None = None
) -> CorrelaxSettings:
    """The settings the options ask for. ``spacing``: mm per pixel of the maps' grid (the model's target
    spacing), needed for the options in mm. ``--fast`` fills in ``--se-tol`` and the precision unless given:
    bf16 on a GPU (``gpu``; None: whether CUDA is available), fp32 on a CPU, where bf16 without bf16 units
    was measured 13× slower than fp32 (an earlier benchmarks/results/cpu-film.json, git history)."""
    if args.precision or not args.fast:
        precision = args.precision or "fp32"
    else:
        if gpu is None:
            import torch

            gpu = torch.cuda.is_available()
        precision = "bf16" if gpu else "fp32"
    se_tol = args.se_tol if args.se_tol is not None else (FAST_SE_TOL if args.fast else 0.0)
    window = args.window or (to_pixels(args.window_mm, spacing, "--window-mm") if args.window_mm else input_size)
    if args.stride:
        stride = args.stride
    elif args.stride_mm:
        stride = max(1, round(args.stride_mm / spacing)) if spacing else to_pixels(args.stride_mm, None, "--stride-mm")
    else:
        stride = max(1, window // WINDOW_PER_STRIDE)
    return CorrelaxSettings(
        window=window, stride=stride, n_masks=args.masks, grid=args.grid,
        keep_prob=args.keep_prob, seed=args.seed, precision=precision, min_tissue=args.min_tissue, se_tol=se_tol,
        mask_round=args.mask_round, mask_fill=args.mask_fill, mask_scope=args.mask_scope, coarse_stride=args.coarse_stride,
        refine_prediction=args.refine_prediction, refine_corr=args.refine_corr, refine_se=args.refine_se,
    )  # fmt: skip


def run_settings(args: argparse.Namespace) -> RunSettings:
    """How the network runs (changes no number): batch size, torch.compile, backend."""
    return RunSettings(batch_size=args.batch_size, compile=args.compile, backend=args.backend)


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """The Pointing Game's options: which methods, the standard tolerance and the reference margin."""
    from correlax.explain.registry import list_methods

    methods = list_methods()
    parser.add_argument("--methods", nargs="+", choices=methods, metavar="METHOD",
                        help=f"methods to score (default: all that the settings give: {', '.join(methods)}; "
                             "with --masks 0 no CorRELAX map but correlax-prediction)")  # fmt: skip
    parser.add_argument("--tolerance-mm", type=float, help="standard protocol tolerance in mm instead of 15 px")
    parser.add_argument("--margin-mm", type=float,
                        help="reference protocol: enlarge each box by this many mm (default: the stride, as the reference)")  # fmt: skip


def scored_methods(args: argparse.Namespace, settings: CorrelaxSettings) -> tuple[str, ...]:
    """``--methods``, or every method the settings give; ValueError for one they cannot give (before any work)."""
    from correlax.explain.registry import available_methods, check_methods

    methods = tuple(args.methods) if args.methods else available_methods(settings)
    check_methods(methods, settings)
    return methods


def margin_pixels(args: argparse.Namespace, spacing: float | None) -> float | None:
    """The reference protocol's margin in pixels of the maps' grid; None: the stride."""
    if args.margin_mm is None:
        return None
    if spacing is None:
        raise ValueError("--margin-mm needs a model with a target pixel spacing")
    return args.margin_mm / spacing
