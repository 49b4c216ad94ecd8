"""Where a result came from: the commit, date, machine, library versions and command, in one shape for every
results file (benchmarks and ``--json`` outputs alike), so that any figure can be traced and rerun."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LIBRARIES = ("correlax", "torch", "numpy", "timm", "onnxruntime", "openvino", "pydicom", "highdicom")


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(cwd: Path | None = None) -> dict:
    """The commit of the checkout holding this package, and whether its tracked files differ from it (results
    files under ``benchmarks/results`` do not count: a run that rewrites one leaves the code as committed)."""
    cwd = cwd or Path(__file__).resolve().parent
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)benchmarks/results", cwd=cwd)
    return {"commit": commit, "dirty": None if dirty is None else bool(dirty)}


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (``platform.processor()`` is empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """The installed version of each library in ``names`` (None where it is not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict:
    """The CPU model, cores, load average, GPUs (only when torch is already imported), Python and OS."""
    gpus = []
    if "torch" in sys.modules:  # never import torch just to say there is no GPU
        torch = sys.modules["torch"]
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1_5_15_min": list(os.getloadavg()),
        "gpus": gpus,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def provenance(command: list[str] | None = None) -> dict:
    """The ``provenance`` block every results file starts with. ``command`` defaults to this process's argv."""
    argv = command if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]
    return {
        **git_state(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "libraries": library_versions(),
        "command": shlex.join(argv),
    }
