"""``correlax data {vindr,mias,csv,synthetic}``: read a data set, write its manifest, print a summary."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from typing import TYPE_CHECKING

from correlax.cli.outputs import FILE, FOLDER, declare_output
from correlax.labels import LABELS

if TYPE_CHECKING:  # the readers are imported when a command runs, not for --help
    from correlax.data.records import Manifest

SPLIT_ORDER = ("train", "val", "test", None)
SPACING_HELP = "pixel spacing (mm) of image files that state none (PNG, PGM, TIFF)"


def millimetres(text: str) -> float:
    """An argparse type: a positive, finite number of millimetres."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of millimetres, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="turn a data set into a manifest for the other commands")
    sub = parser.add_subparsers(dest="data_command", metavar="SOURCE", required=True)

    vindr = sub.add_parser("vindr", help="VinDr-Mammo folder (the two CSVs and images/)")
    vindr.add_argument("root", type=Path)
    _val_options(vindr)

    mias = sub.add_parser("mias", help="mini-MIAS folder (Info.txt and mdbNNN.pgm/.png)")
    mias.add_argument("root", type=Path)
    mias.add_argument(
        "--split",
        default="train=0.7,val=0.15,test=0.15",
        type=_fractions,
        help="patient-wise fractions, e.g. train=0.7,val=0.15,test=0.15, or 'none' (default: %(default)s)",
    )
    mias.add_argument("--seed", type=int, default=0, help="seed of the split (default: %(default)s)")

    table = sub.add_parser("csv", help="generic CSV: image_path,label,xmin,ymin,xmax,ymax[,split,patient_id]")
    table.add_argument("file", type=Path)
    table.add_argument(
        "--drop-missing", action="store_true", help="leave out rows whose image is missing instead of failing"
    )
    table.add_argument("--spacing", type=millimetres, help=SPACING_HELP + ", for rows without spacing_mm")

    synthetic = sub.add_parser("synthetic", help="write a small synthetic VinDr-layout data set and its manifest")
    synthetic.add_argument("out", type=Path)
    synthetic.add_argument("--images", type=int, default=32, help="number of images (default: %(default)s)")
    synthetic.add_argument("--size", type=int, default=1536, help="longest image side in pixels (default: %(default)s)")
    _val_options(synthetic)

    for p, source in ((vindr, "ROOT"), (mias, "ROOT"), (table, "FILE")):
        p.add_argument("--out", type=Path, help=f"manifest to write (default: <{source} name>-manifest.json here)")
    for p, where in ((vindr, "ROOT/images (image ids with ../)"), (table, "the table's folder (../x.png, /elsewhere)")):
        p.add_argument("--allow-outside-root", action="store_true", help=f"read image files outside {where}")
    for p in (vindr, mias, table, synthetic):
        p.set_defaults(func=run)
        declare_output(p, kind=FOLDER if p is synthetic else FILE)


def _val_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--val",
        type=float,
        default=0.15,
        help="fraction of the official training patients moved to 'val' (default: %(default)s; 0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the val split (and of the synthetic data)")


def _fractions(text: str) -> dict[str, float] | None:
    if text.strip().lower() == "none":
        return None
    try:
        pairs = [item.split("=") for item in text.split(",") if item.strip()]
        fractions = {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected name=fraction pairs such as train=0.7,val=0.15,test=0.15, got {text!r}"
        ) from None
    unknown = set(fractions) - {"train", "val", "test"}
    if unknown or not fractions:
        raise argparse.ArgumentTypeError(f"split names must be train, val, test; got {text!r}")
    return fractions


def run(args: argparse.Namespace) -> int:
    try:
        manifest, out = _load(args)
    except (ValueError, FileNotFoundError) as e:  # ManifestError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 1
    manifest.save(out)
    print(summary_table(manifest))
    print(f"manifest written to {out}")
    return 0


def _load(args: argparse.Namespace) -> tuple[Manifest, Path]:
    from correlax.data import load_csv, load_mias, load_vindr, patient_split

    command = args.data_command
    if command == "synthetic":
        from correlax.data.synthetic import make_synthetic_dataset

        root = Path(make_synthetic_dataset(args.out, args.images, args.seed, size=args.size))
        manifest = _carve_val(load_vindr(root), args.val, args.seed)
        manifest.source = "synthetic"
        return manifest, root / "manifest.json"
    if command == "vindr":
        manifest = _carve_val(load_vindr(args.root, allow_outside_root=args.allow_outside_root), args.val, args.seed)
    elif command == "mias":
        manifest = load_mias(args.root)
        if args.split:
            manifest.records = patient_split(manifest.records, args.split, seed=args.seed)
    else:
        manifest = load_csv(
            args.file, drop_missing=args.drop_missing, spacing=args.spacing, allow_outside_root=args.allow_outside_root
        )
    name = args.file.stem if command == "csv" else args.root.resolve().name
    return manifest, args.out or Path(f"{name}-manifest.json")


def _carve_val(manifest: Manifest, fraction: float, seed: int) -> Manifest:
    from correlax.data.split import carve_val

    manifest.records = carve_val(manifest.records, fraction, seed)
    return manifest


def summary_table(manifest: Manifest) -> str:
    """Plain-text table: images and patients per split, then images and boxes per label (per split too)."""
    splits = [s for s in SPLIT_ORDER if any(r.split == s for r in manifest.records)]
    names = [s or "none" for s in splits]
    images = Counter(r.split for r in manifest.records)
    patients = {s: len({r.patient_id for r in manifest.records if r.split == s}) for s in splits}
    per_label = {
        s: Counter(label for r in manifest.records if r.split == s for label in (r.labels or {"no_finding"}))
        for s in splits
    }
    summary = manifest.summary()

    header = ["", "images", "boxes", *names]
    rows = [
        ["images", str(summary["images"]), "", *(str(images[s]) for s in splits)],
        ["patients", str(summary["patients"]), "", *(str(patients[s]) for s in splits)],
    ]
    for label in LABELS:
        n_images = summary["images_per_label"].get(label, 0)
        n_boxes = summary["boxes_per_label"].get(label, 0)
        if n_images or n_boxes:
            rows.append([label, str(n_images), str(n_boxes), *(str(per_label[s][label]) for s in splits)])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"{manifest.source or 'data set'}: {summary['images']} images, {summary['patients']} patients"]
    for first, *rest in [header, *rows]:
        cells = [first.ljust(widths[0]), *(cell.rjust(w) for cell, w in zip(rest, widths[1:], strict=True))]
        lines.append("  ".join(cells))
    if manifest.missing:
        shown = ", ".join(manifest.missing[:10]) + (" ..." if len(manifest.missing) > 10 else "")
        lines.append(f"missing on disk ({len(manifest.missing)}): {shown}")
    return "\n".join(lines)
