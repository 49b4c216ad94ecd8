"""``correlax view``: a zoomable viewer page (OUT/index.html) for a folder of ``correlax explain`` outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

from correlax.cli.outputs import EXISTING_FOLDER, declare_output


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "view",
        help="write OUT/index.html: the explained images at full resolution with their maps (opens offline)",
        description="Write OUT/index.html, a zoomable viewer of the images in OUT that 'correlax explain' explained: "
        "each source image at its stored resolution (as Deep Zoom tiles under OUT/viewer/), every map per class as an "
        "overlay to toggle, the maps' peaks as markers. Relative source paths in OUT/*.json are read from the "
        "working directory.",
    )
    p.add_argument("out", type=Path, metavar="OUT", help="output folder of 'correlax explain'")
    p.add_argument("--title", default=None, help="page title (default: the folder name)")
    p.add_argument("--data", type=Path, help="manifest JSON: show the true boxes of the images it lists")
    p.set_defaults(func=run)
    declare_output(p, kind=EXISTING_FOLDER)


def run(args: argparse.Namespace) -> int:
    from correlax.data.records import Manifest
    from correlax.pipelines.view_outputs import explain_viewer_images, manifest_boxes, summary_files
    from correlax.report.viewer import ViewerWriter

    if not summary_files(args.out):
        print(f"correlax view: {args.out}: no 'correlax explain' outputs (<name>.json + <name>.npz)")
        return 2
    try:
        boxes = manifest_boxes(Manifest.load(args.data)) if args.data else {}
    except (OSError, ValueError) as exc:
        print(f"correlax view: {exc}")
        return 2
    failures: list[str] = []
    writer = ViewerWriter(args.out, title=args.title or f"CorRELAX — {args.out.name}")
    for image in explain_viewer_images(args.out, failures, boxes):
        writer.add(image)
    page = writer.finish()
    print(f"{len(writer.entries)} image(s): {page}")
    for message in failures:
        print(f"  FAILED {message}")
    return 1 if failures else 0
