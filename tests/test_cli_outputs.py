"""Every command checks where it writes before any work: an unwritable --out is one line and exit status 2,
and an OSError met mid-run is one line (no traceback) and exit status 1."""

from __future__ import annotations

import os
import shutil

import pytest

from correlax.cli.main import main
from test_viewer import explained  # noqa: F401 -- the fixture: 'correlax explain' outputs


@pytest.fixture
def unwritable(tmp_path):
    """A folder that exists and cannot be written: sysfs for root (mode bits do not stop root), else mode 0555."""
    if os.geteuid() == 0:
        return "/sys/kernel"
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    return str(folder)


COMMANDS = {
    "train": ["train", "--data", "m.json", "--out", "{out}"],
    "evaluate": ["evaluate", "--model", "x.safetensors", "--data", "m.json", "--out", "{out}"],
    "crossval": ["crossval", "--data", "m.json", "--out", "{out}"],
    "pointing-game": ["pointing-game", "--model", "x.safetensors", "--data", "m.json", "--out", "{out}"],
    "explain": ["explain", "--model", "x.safetensors", "--out", "{out}", "image.png"],
    "demo": ["demo", "--out", "{out}"],
    "data csv": ["data", "csv", "t.csv", "--out", "{out}/m.json"],
    "data vindr": ["data", "vindr", "root", "--out", "{out}/m.json"],
    "data synthetic": ["data", "synthetic", "{out}"],
    "view": ["view", "{out}"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_out_is_one_line_before_any_work(command, unwritable, capsys):
    argv = [a.replace("{out}", unwritable) for a in COMMANDS[command]]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"correlax {argv[0]}: {unwritable}: cannot write the outputs there")


@pytest.mark.parametrize("command", ["train", "data csv", "data synthetic"])
def test_an_out_under_a_file_is_one_line(command, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv = [a.replace("{out}", str(tmp_path / "file" / "sub")) for a in COMMANDS[command]]
    assert main(argv) == 2
    assert "cannot write the outputs there" in capsys.readouterr().err


def test_an_oserror_mid_run_is_one_line(explained, tmp_path, capsys):  # noqa: F811
    out, _ = explained
    folder = tmp_path / "view"
    folder.mkdir()
    for name in ("left.json", "left.npz"):
        shutil.copy(out / name, folder / name)
    (folder / "index.html").mkdir()  # the page cannot be written where it goes
    assert main(["view", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("correlax view: ") and "index.html" in err[0], err
