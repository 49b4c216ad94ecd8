"""``correlax explain``: CorRELAX maps for image files or folders (DICOM, PNG, PGM, TIFF)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from correlax.cli.data import SPACING_HELP, millimetres
from correlax.cli.options import add_correlax_options, correlax_settings, run_settings
from correlax.cli.outputs import declare_output
from correlax.cli.pacs import add_pacs_options, with_pacs


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "explain", help="CorRELAX heatmaps (.npz, overlay PNGs, peaks .json) for mammograms",
        epilog="exit status: 0 all done; 1 an input failed (listed by name); 2 nothing could start (model, options, "
        "--out); 3 images were left to another live worker sharing --out, still being made (listed by name)",
    )  # fmt: skip
    p.add_argument("inputs", nargs="*", type=Path, metavar="INPUT", help="image files or folders (or --from)")
    p.add_argument("--model", required=True, type=Path,
                   help="checkpoint (.safetensors or training .ckpt); or your own model, a TorchScript file or "
                        "(with --arch) a timm state dict, with --labels-file")  # fmt: skip
    own = p.add_argument_group("your own model (docs/own-model.md)")
    own.add_argument("--labels-file", type=Path, help="one label per line, in the order of the model's outputs")
    own.add_argument("--arch", help="timm model name (timm.create_model) for a state dict: .safetensors, .pth, .bin")
    own.add_argument("--feature-layer", help="module whose output is the representation, e.g. layer4 (timm models "
                                             "default to forward_features)")  # fmt: skip
    own.add_argument("--activation", choices=("sigmoid", "softmax"), default="sigmoid",
                     help="how the logits become probabilities: multi-label sigmoid or one softmax (default: %(default)s)")  # fmt: skip
    p.add_argument("--out", required=True, type=Path,
                   help="output folder; an image is skipped when it was done with the same model, spacing and settings "
                        "and all its outputs exist (missing ones are made from the stored maps)")  # fmt: skip
    add_correlax_options(p)
    p.add_argument("--devices", type=int, default=1, help="processes (GPUs or CPU workers) per node")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--accelerator", default="auto", help="auto, cpu, cuda (default: %(default)s)")
    p.add_argument("--spacing", type=millimetres, help=SPACING_HELP + ": mini-MIAS is 0.2")
    p.add_argument("--max-pixels", type=int,
                   help="refuse images with more pixels than this, read from the header (default: 100 million)")  # fmt: skip
    p.add_argument("--prefetch", type=int, default=1, metavar="N",
                   help="read and pre-process the next N images in a thread while one is explained (0: off; default 1)")  # fmt: skip
    p.add_argument("--dicom", action="store_true", help="for DICOM inputs also write Parametric Maps, an SR, a GSPS and heatmap overlays (needs correlax[dicom])")
    add_pacs_options(p)
    p.set_defaults(func=with_pacs(run))
    declare_output(p)


def run(args: argparse.Namespace) -> int:
    from correlax.errors import FileProblem
    from correlax.io import MAX_PIXELS
    from correlax.models import CheckpointError, ModelFile, load_checkpoint
    from correlax.pipelines.explain_files import ExplainJob, InputError, run_explain

    if args.dicom and importlib.util.find_spec("highdicom") is None:
        print("correlax explain: --dicom needs highdicom: pip install 'correlax[dicom]'")
        return 2
    model = ModelFile(args.model, args.labels_file, args.arch, args.feature_layer, args.activation)
    try:
        _, info = load_checkpoint(model)  # the window defaults to the model's input size
        settings = correlax_settings(args, info.input_size, info.preprocess_settings.target_spacing)
        job = ExplainJob(
            tuple(args.inputs), args.out, model, settings, run_settings(args), args.devices, args.num_nodes,
            args.accelerator, spacing=args.spacing, max_pixels=args.max_pixels or MAX_PIXELS, dicom=args.dicom,
            prefetch=args.prefetch,
        )  # fmt: skip
        report = run_explain(job)
    except (CheckpointError, InputError, FileProblem, ValueError) as e:
        print(f"correlax explain: {e}")
        return 2
    return summarise(report, args.prefetch, args.inputs)


def summarise(report, prefetch: int, inputs) -> int:
    """Print the run's counts and lists; the exit status: 1 when an input failed or one given by name was passed
    over, 3 when some images were left to another worker that is still making them (not done yet), else 0."""
    counts = [f"{len(report.done)} explained", f"{len(report.skipped)} already done"]
    if report.completed:
        counts.insert(1, f"{len(report.completed)} completed from the map store")
    if report.elsewhere:
        counts.append(f"{len(report.elsewhere)} left to another worker, still being made")
    print(", ".join(counts) + f", {len(report.failures)} failed")
    if report.busy_fraction() is not None:
        print(f"explaining took {report.explain_seconds:.1f} s of {report.wall_seconds:.1f} s "
              f"({100 * report.busy_fraction():.0f} % busy; reading ahead: {prefetch} image(s))")  # fmt: skip
    if report.passed_over:
        print(f"{len(report.passed_over)} file(s) are not images to read, passed over:")
        for path, why in report.passed_over[:10]:
            print(f"  {path}: {why}")
    for message in report.repaired:
        print(f"  computed again: {message}")
    for path, _ in report.elsewhere:
        print(f"  still being made by another worker: {path}")
    for _, message in report.failures:
        print(f"  FAILED {message}")
    named_but_passed_over = any(path in inputs for path, _ in report.passed_over)  # e.g. a FIFO given by name
    return 1 if report.failures or named_but_passed_over else 3 if report.elsewhere else 0
