"""Peak memory (RSS) of one image along read → prepare → explain → outputs, against the image's size.

For synthetic 16-bit mammograms (PNG, and DICOM with a VOI window; 12 bits stored, 0.1 mm pixels) of about 10, 25, 50 and 100
megapixels, each stage runs in a fresh process that reports its own high-water mark (``VmHWM`` of
``/proc/self/status``) after the imports and at the end, so no stage inherits another's peak. Stages:

- ``read``: :func:`correlax.io.read_image`;
- ``prepare``: :func:`correlax.preprocess.load_prepared` with the model's pre-processing;
- ``explain``: prepare, then the prediction-only CorRELAX pass (``--masks 0``) of a tiny model (window 64,
  stride 32: the stride sets how many windows run, not the size of the maps);
- ``outputs``: the whole ``correlax explain --masks 0`` command (map store, overlays, JSON).

Models: the demo's kind (a tiny CNN on the native pixel grid) and the same at 0.4 mm (``target_spacing``).
MB per megapixel is (peak − RSS after the imports) / the image's megapixels; the peak is reset after the imports.

    nice -n 10 python benchmarks/memory.py --out benchmarks/results/memory.json   # about 20 minutes on 2 busy cores
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pydicom

from correlax.io import ImageReadError

STAGES = ("read", "prepare", "explain", "outputs")
MODELS = {"native": None, "0.4mm": 0.4}  # the model's target_spacing
SPACING_MM = 0.1  # of the synthetic images
LABELS = ("no_finding", "mass", "calcification")
WINDOW, STRIDE = 64, 32
WINDOW_CENTRE_WIDTH = (2400, 2600)  # the DICOM's VOI window over its 12-bit values


def memory_mb(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process, MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Start the peak anew from the current RSS (Linux ≥ 4.0), so that import-time peaks do not hide the stage's."""
    Path("/proc/self/clear_refs").write_text("5")


def synthetic_mammogram(megapixels: float, seed: int = 0) -> np.ndarray:
    """(rows, columns) uint16, 12 bits stored, rows:columns 5:4: a breast against the left edge with texture,
    drawn at 1/16 of the size and enlarged (the content does not change what a decoder allocates)."""
    rows = int(math.sqrt(megapixels * 1e6 * 5 / 4))
    cols = int(megapixels * 1e6 / rows)
    rng = np.random.default_rng(seed)
    small_r, small_c = rows // 16, cols // 16
    yy, xx = np.mgrid[0:small_r, 0:small_c].astype(np.float32)
    inside = ((yy - small_r / 2) / (0.45 * small_r)) ** 2 + (xx / (0.8 * small_c)) ** 2 < 1
    texture = cv2.GaussianBlur(rng.random((small_r, small_c), dtype=np.float32), (0, 0), 3)
    small = np.where(inside, 1200 + 2400 * texture, 0).astype(np.uint16)
    return cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR)


def write_images(folder: Path, megapixels: float) -> tuple[dict[str, Path], tuple[int, int]]:
    """The PNG and the DICOM of one synthetic mammogram, and its (rows, columns)."""
    from correlax.data.synthetic.dataset import dicom_bytes

    pixels = synthetic_mammogram(megapixels)
    png, dcm = folder / f"mg-{megapixels:g}mp.png", folder / f"mg-{megapixels:g}mp.dcm"
    cv2.imwrite(str(png), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    encoded = dicom_bytes(pixels, study_id="s", series_id="s", image_id=dcm.stem, laterality="L", view="CC",
                          spacing=SPACING_MM)  # fmt: skip
    ds = pydicom.dcmread(io.BytesIO(encoded))
    ds.WindowCenter, ds.WindowWidth = WINDOW_CENTRE_WIDTH  # as mammograms for presentation state one
    ds.save_as(dcm, enforce_file_format=True)
    return {"png": png, "dicom": dcm}, pixels.shape


def write_model(folder: Path, target_spacing: float | None) -> Path:
    import torch

    from correlax.models import CheckpointInfo, create_model, save_checkpoint
    from correlax.preprocess import PreprocessSettings

    torch.manual_seed(0)
    settings = PreprocessSettings(target_spacing=target_spacing).to_dict()
    info = CheckpointInfo(labels=LABELS, backbone="tiny", input_size=WINDOW, preprocess=settings, head="linear")
    name = f"tiny-{'native' if target_spacing is None else f'{target_spacing}mm'}.safetensors"
    return save_checkpoint(folder / name, create_model("tiny", LABELS, head="linear"), info)


def run_stage(stage: str, image: Path, model: Path, out: Path) -> dict:
    """One stage in this process; returns its peak and the RSS before it (MB). Each stage imports only what it
    uses, before the peak is reset."""
    import torch

    from correlax.io import read_image
    from correlax.models import load_checkpoint
    from correlax.preprocess import load_prepared

    torch.set_num_threads(1)
    network, info = load_checkpoint(model)
    if stage == "explain":
        from correlax.explain.explainer import CorrelaxExplainer
        from correlax.explain.settings import CorrelaxSettings
    if stage == "outputs":
        from lightning.fabric import Fabric  # noqa: F401 -- imported by the command: its import is not the stage's

        from correlax.cli.main import main as cli_main
        from correlax.report.overlays import overlay_png  # noqa: F401 -- as Fabric
    reset_peak()
    before, started = memory_mb("VmRSS"), time.perf_counter()
    facts: dict = {}
    try:
        if stage == "read":
            facts["dtype"] = str(read_image(image).pixels.dtype)
        elif stage == "outputs":
            facts["exit_code"] = cli_main(
                ["explain", "--model", str(model), "--out", str(out), str(image), "--masks", "0", "--window", str(WINDOW),
                 "--stride", str(STRIDE), "--spacing", str(SPACING_MM), "--prefetch", "0", "--accelerator", "cpu"]
            )  # fmt: skip
        else:
            prepared = load_prepared(image, info.preprocess_settings, SPACING_MM)
            facts["prepared_shape"] = list(prepared.image.shape[:2])
            if stage == "explain":
                explainer = CorrelaxExplainer(network, CorrelaxSettings(window=WINDOW, stride=STRIDE, n_masks=0))
                facts["map_shape"] = list(explainer.entry(prepared.tensor(), prepared.breast_box)["prediction"].shape)
    except ImageReadError as exc:  # over a limit: the refusal's own cost is measured
        facts["refused"] = str(exc).replace(str(Path(image).parent), "<tmp>")  # no machine path in the results
    return {**facts, "before_mb": before, "peak_mb": memory_mb("VmHWM"), "seconds": time.perf_counter() - started}


def measure(stage: str, image: Path, model: Path, out: Path, timeout: float) -> dict:
    """``run_stage`` in a fresh Python process (nothing shared with the others)."""
    command = [sys.executable, __file__, "--child", stage, "--image", str(image), "--model", str(model), "--out", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:g} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def sweep(megapixels: list[float], stages: list[str], models: list[str], timeout: float,
          explain_at: list[float], explain_formats: list[str], say=print) -> list[dict]:  # fmt: skip
    """Every size, format and model read and prepared; explained (and outputs written) at the sizes ``explain_at``
    and in the formats ``explain_formats`` (their cost is per prepared pixel: a few points show it)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="correlax-memory-") as tmp:
        folder = Path(tmp)
        checkpoints = {name: write_model(folder, MODELS[name]) for name in models}
        for mp in megapixels:
            images, shape = write_images(folder, mp)
            for kind, image in images.items():
                for name in models:
                    for stage in stages:
                        if stage == "read" and name != models[0]:
                            continue  # reading does not depend on the model
                        if stage in ("explain", "outputs") and (mp not in explain_at or kind not in explain_formats):
                            continue
                        result = measure(stage, image, checkpoints[name], folder / f"out-{kind}-{name}-{mp:g}", timeout)
                        row = {"megapixels": mp, "shape": list(shape), "format": kind, "model": name, "stage": stage,
                               **result}  # fmt: skip
                        if "peak_mb" in result:
                            row["mb_per_megapixel"] = (result["peak_mb"] - result["before_mb"]) / mp
                        say(json.dumps(row))
                        rows.append(row)
            for path in images.values():
                path.unlink()
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Peak RSS (GB) and MB per megapixel of each measured stage, one line per image size, format and model."""
    lines = ["| MP | format | model | " + " | ".join(STAGES) + " |", "| --- | --- | --- |" + " --- |" * len(STAGES)]
    groups: dict[tuple, dict] = {}
    for row in rows:
        groups.setdefault((row["megapixels"], row["format"], row["model"]), {})[row["stage"]] = row
    for (mp, kind, model), stages in groups.items():
        cells = []
        for stage in STAGES:
            row = stages.get(stage)
            if row is None or "peak_mb" not in row:
                cells.append("" if row is None else row.get("error", ""))
            else:
                refused = " refused" if "refused" in row or row.get("exit_code") == 1 else ""
                cells.append(f"{row['peak_mb'] / 1024:.2f} GB ({row['mb_per_megapixel']:.1f} MB/MP){refused}")
        lines.append(f"| {mp:g} | {kind} | {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--explain-at", type=float, nargs="+", default=[10, 100], metavar="MP",
                        help="sizes at which the explain and outputs stages run (default: 10 100)")
    parser.add_argument("--explain-formats", nargs="+", choices=["png", "dicom"], default=["dicom"])
    parser.add_argument("--timeout", type=float, default=400, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.json"))
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the Markdown table of a results file and stop")
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--image", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())["results"]))
        return
    if args.child:
        print(json.dumps(run_stage(args.child, args.image, args.model, args.out)))
        return
    from correlax.fileio import write_json
    from correlax.provenance import provenance

    # provenance of the code measured: taken before the sweep, which lasts minutes
    out = {"provenance": provenance(), "spacing_mm": SPACING_MM, "labels": list(LABELS), "window": WINDOW, "stride": STRIDE}
    out["results"] = sweep(args.megapixels, args.stages, args.models, args.timeout, args.explain_at, args.explain_formats)
    write_json(args.out, out)


if __name__ == "__main__":
    main()
