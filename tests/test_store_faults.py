"""Issue 24: the map store under fault: keys that hold the spacing, damaged entries, locks that expire, outputs
made complete, stable output names, and temporaries that are correlax's own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch

from correlax.cli.main import main
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.labels import CALCIFICATION, MASS, NO_FINDING
from correlax.models import CheckpointInfo, create_model, save_checkpoint
from correlax.pipelines import claims
from correlax.pipelines.map_store import EntryKey, ImageIdentity, MapStore
from correlax.preprocess import PreprocessSettings

FAST = ["--window", "32", "--stride", "16", "--masks", "0", "--batch-size", "64"]  # the prediction map alone: fast
LABELS = (NO_FINDING, MASS, CALCIFICATION)
DAY = 24 * 3600


def breast(seed: int, h: int = 72, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.uint8)
    cv2.ellipse(img, (0, h // 2), (int(0.7 * w), int(0.45 * h)), 0, -90, 90, 130, -1)
    img = np.where(img > 0, img + rng.integers(0, 50, img.shape), 0).astype(np.uint8)
    cv2.circle(img, (w // 4, h // 3), max(3, h // 16), 250, -1)
    return img


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    torch.manual_seed(0)
    model = save_checkpoint(root / "model.safetensors", create_model("tiny", LABELS), CheckpointInfo(LABELS, "tiny", 32))
    at_04 = save_checkpoint(root / "at04.safetensors", create_model("tiny", LABELS),
                            CheckpointInfo(LABELS, "tiny", 32, preprocess=PreprocessSettings(target_spacing=0.4).to_dict()))  # fmt: skip
    for folder in ("a", "b"):
        (root / folder).mkdir()
        cv2.imwrite(str(root / folder / "1-1.png"), breast(len(folder) + ord(folder)))
    cv2.imwrite(str(root / "big.png"), breast(7, 192, 160))
    return root, model, at_04


def explain(model, out, *inputs, extra=()) -> list[str]:
    return ["explain", "--model", str(model), "--out", str(out), *map(str, inputs), *FAST, *extra]


def store_entries(out) -> list:
    return sorted((out / "maps").glob("*/*.npz"))


# item 1: the spacing is part of the key


def test_a_rerun_at_another_spacing_computes_again_and_pointing_game_takes_only_its_own(corpus, tmp_path, capsys):
    root, _, at_04 = corpus
    out = tmp_path / "out"
    assert main(explain(at_04, out, root / "big.png", extra=["--spacing", "0.2"])) == 0
    capsys.readouterr()
    assert main(explain(at_04, out, root / "big.png", extra=["--spacing", "0.1"])) == 0
    assert "1 explained, 0 already done" in capsys.readouterr().out
    summary = json.loads((out / "big.json").read_text())
    maps = np.load(out / "big.npz")["prediction"]
    assert summary["grid"]["shape"] == list(maps.shape[1:]) == [48, 40]  # 192 × 160 at 0.1 mm, resampled to 0.4 mm
    assert len(store_entries(out)) == 2
    record = ImageRecord("big", "big.png", "p", split="test", spacing=(0.1, 0.1),
                         findings=[Finding(MASS, (20, 40, 60, 80))])  # fmt: skip
    Manifest([record], root=root).save(tmp_path / "manifest.json")
    at_02 = tmp_path / "at02"
    assert main(explain(at_04, at_02, root / "big.png", extra=["--spacing", "0.2"])) == 0
    pg = ["pointing-game", "--model", str(at_04), "--data", str(tmp_path / "manifest.json"), "--skip-classifier",
          "--methods", "correlax-prediction", *FAST]  # fmt: skip
    assert main([*pg, "--explain-dir", str(at_02), "--out", str(tmp_path / "pg02")]) == 0
    assert len(store_entries(tmp_path / "pg02")) == 1  # the 0.2 mm maps were not taken for the 0.1 mm record
    assert main([*pg, "--explain-dir", str(out), "--out", str(tmp_path / "pg01")]) == 0
    assert store_entries(tmp_path / "pg01") == []  # the 0.1 mm maps were


# item 2: damaged entries


def test_damaged_entries_are_named_and_computed_again_and_never_crash_view_or_pointing_game(corpus, tmp_path, capsys):
    root, model, _ = corpus
    out = tmp_path / "out"
    images = [root / "a" / "1-1.png", root / "b" / "1-1.png"]
    assert main(explain(model, out, *images)) == 0

    def damage() -> list:
        truncated, scrambled = store_entries(out)
        truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])  # in place: the view too
        scrambled.write_bytes(np.random.default_rng(0).bytes(scrambled.stat().st_size))
        return [truncated, scrambled]

    damaged = damage()
    capsys.readouterr()
    assert main(explain(model, out, *images)) == 0
    text = capsys.readouterr().out
    assert "2 explained, 0 already done" in text
    assert all(f"{path}: damaged map entry" in text for path in damaged)
    assert all(f"the map of {image.resolve()}" in text for image in images)
    assert all(np.load(p)["prediction"].shape == (3, 72, 60) for p in [*store_entries(out), out / "1-1.npz"])
    damaged = damage()
    assert main(["view", str(out)]) == 1
    text = capsys.readouterr().out
    assert "damaged map entry" in text and "Traceback" not in text and "1-1.npz" in text
    records = [ImageRecord(f"{f}/1-1", f"{f}/1-1.png", f"p{f}", split="test", findings=[Finding(MASS, (10, 10, 30, 30))])
               for f in ("a", "b")]  # fmt: skip
    Manifest(records, root=root).save(tmp_path / "manifest.json")
    pg = ["pointing-game", "--model", str(model), "--data", str(tmp_path / "manifest.json"), "--skip-classifier",
          "--methods", "correlax-prediction", "--explain-dir", str(out), "--out", str(tmp_path / "pg"), *FAST]  # fmt: skip
    assert main(pg) == 0
    assert len(store_entries(tmp_path / "pg")) == 2  # computed in its own store, not read from the damaged ones
    assert "computed again" in capsys.readouterr().out


# item 3: claims that expire and waits that end


@pytest.fixture
def store_and_key(tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), breast(0))
    store = MapStore(tmp_path / "maps")
    key = EntryKey(ImageIdentity.of(image), "model", "correlax", {"window": 32})
    lock = store.lock_path(key)
    lock.parent.mkdir(parents=True)
    return store, key, lock


def _write_claim(lock, info, age: float = 0.0):
    lock.write_text(info if isinstance(info, str) else json.dumps(info))
    then = time.time() - age
    os.utime(lock, (then, then))


def test_claims_of_dead_reused_rebooted_or_silent_owners_are_taken_over(store_and_key):
    store, key, lock = store_and_key
    me = claims.owner()
    host = socket.gethostname()
    abandoned = {
        "a live pid 1, three days old, without a start time": ({"host": host, "pid": 1, "time": 0}, 3 * DAY),
        "our pid, started at another time (reused)": ({**me, "start": me["start"] + 1}, 0),
        "a claim from before a reboot": ({**me, "boot_id": "another-boot"}, 0),
        "another host without a heartbeat": ({"host": "elsewhere", "pid": 5, "start": 1}, claims.STALE_SECONDS + 60),
        "a claim cut mid-JSON, two minutes old": ('{"host": "x", "pi', 120),
        "an empty claim, two minutes old": ("", 120),
    }
    for case, (info, age) in abandoned.items():
        _write_claim(lock, info, age)
        claim = store.claim(key)
        assert claim is not None, case
        claim.release()
    live = {
        "this very process": (me, 3 * DAY),
        "another host with a recent heartbeat": ({"host": "elsewhere", "pid": 5, "start": 1}, 60),
        "a claim being written right now": ('{"host": "x", "pi', 0),
    }
    for case, (info, age) in live.items():
        _write_claim(lock, info, age)
        assert store.claim(key) is None, case


def test_every_wait_has_a_bound_that_names_the_image(store_and_key):
    store, key, lock = store_and_key
    held = store.claim(key)
    store.wait_seconds = 0.5
    started = time.monotonic()
    with pytest.raises(claims.ClaimTimeout, match=r"film\.png: still being computed by pid \d+ on .* after 0 s"):
        store.wait_for(key, "film.png", poll_seconds=0.1)
    assert time.monotonic() - started < 5
    held.release()
    assert store.wait_for(key, "film.png") is None  # no claim: nothing to wait for, no entry


def test_the_holder_refreshes_its_claim(tmp_path):
    """The heartbeat keeps a long computation's claim fresh, so no other host takes it over."""
    lock = tmp_path / "x.lock"
    code = (f"import os, time; from pathlib import Path; from correlax.pipelines import claims\n"
            f"claims.HEARTBEAT_SECONDS = 0.1\nc = claims.try_claim(Path({str(lock)!r}), print)\n"
            f"os.utime(c.path, (0, 0)); time.sleep(1.0)\nprint(time.time() - c.path.stat().st_mtime)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert float(done.stdout.split()[-1]) < 1.0


def test_an_abandoned_claim_does_not_stop_explain_or_hang_pointing_game(corpus, tmp_path, capsys):
    root, model, _ = corpus
    image = root / "a" / "1-1.png"
    first = tmp_path / "first"
    assert main(explain(model, first, image)) == 0
    key = json.loads((first / "1-1.json").read_text())["key"]
    out = tmp_path / "out"
    lock = out / "maps" / key[:2] / f"{key}.lock"
    lock.parent.mkdir(parents=True)
    _write_claim(lock, {"host": socket.gethostname(), "pid": 1, "time": 0}, 3 * DAY)
    capsys.readouterr()
    assert main(explain(model, out, image)) == 0
    assert "1 explained" in capsys.readouterr().out and (out / "1-1.json").exists()
    # pointing-game: a live claim (this process) on its own store; the wait ends in a named failure
    record = ImageRecord("a", "a/1-1.png", "p", split="test", findings=[Finding(MASS, (10, 10, 30, 30))])
    Manifest([record], root=root).save(tmp_path / "manifest.json")
    pg_out = tmp_path / "pg"
    pg = ["pointing-game", "--model", str(model), "--data", str(tmp_path / "manifest.json"), "--skip-classifier",
          "--methods", "correlax-prediction", "--out", str(pg_out), *FAST]  # fmt: skip
    pg_lock = pg_out / "maps" / key[:2] / f"{key}.lock"
    pg_lock.parent.mkdir(parents=True)
    _write_claim(pg_lock, claims.owner())
    started = time.monotonic()
    assert main([*pg, "--max-wait", "1"]) == 1
    assert time.monotonic() - started < 60
    assert "1-1.png: still being computed by pid" in capsys.readouterr().out
    _write_claim(pg_lock, {"host": socket.gethostname(), "pid": 1, "time": 0}, 3 * DAY)
    assert main(pg) == 0


def test_a_run_that_leaves_images_to_another_worker_says_so(corpus, tmp_path, capsys):
    root, model, _ = corpus
    images = [root / "a" / "1-1.png", root / "b" / "1-1.png"]
    first = tmp_path / "first"
    assert main(explain(model, first, images[0])) == 0
    key = json.loads((first / "1-1.json").read_text())["key"]
    out = tmp_path / "out"
    lock = out / "maps" / key[:2] / f"{key}.lock"
    lock.parent.mkdir(parents=True)
    _write_claim(lock, claims.owner())  # another worker of this machine, alive, is making a/1-1
    capsys.readouterr()
    assert main(explain(model, out, *images)) == 3
    text = capsys.readouterr().out
    assert "1 explained, 0 already done, 1 left to another worker, still being made, 0 failed" in text
    assert f"still being made by another worker: {images[0]}" in text
    lock.unlink()  # that worker gave up
    assert main(explain(model, out, *images)) == 0


# item 5: an image is done only when every output asked for exists


def test_missing_outputs_are_made_from_the_stored_maps(corpus, tmp_path, capsys):
    root, model, _ = corpus
    out = tmp_path / "out"
    image = root / "a" / "1-1.png"
    assert main(explain(model, out, image)) == 0
    (out / f"1-1_{MASS}.png").unlink()
    capsys.readouterr()
    assert main(explain(model, out, image)) == 0
    text = capsys.readouterr().out
    assert "0 explained, 1 completed from the map store, 0 already done" in text
    assert (out / f"1-1_{MASS}.png").exists() and len(store_entries(out)) == 1
    assert not list(out.glob(".correlax-*.tmp")), "a temporary left behind"  # the entry link is the same file


def test_view_refuses_outputs_whose_source_has_changed(corpus, tmp_path, capsys):
    """The JSON names the file explained by its resolved path and bytes: view never draws the maps over another
    image that now sits at that path (or at the same relative path seen from another folder)."""
    root, model, _ = corpus
    image = tmp_path / "img" / "1-1.png"
    image.parent.mkdir()
    image.write_bytes((root / "a" / "1-1.png").read_bytes())
    out = tmp_path / "out"
    assert main(explain(model, out, image)) == 0
    image.write_bytes((root / "b" / "1-1.png").read_bytes())  # another film at the same path
    capsys.readouterr()
    assert main(["view", str(out)]) == 1
    assert "has changed since it was explained" in capsys.readouterr().out + capsys.readouterr().err


def test_dicom_outputs_asked_for_later_or_failed_before_are_made_on_rerun(corpus, tmp_path, capsys, monkeypatch):
    pytest.importorskip("highdicom")
    from dicom_factory import write_dicom

    import correlax.report.dicom_export as dicom_export

    _, model, _ = corpus
    source = write_dicom(tmp_path / "film.dcm", (breast(3).astype(np.uint16) * 16), spacing=(0.1, 0.1))
    out = tmp_path / "out"
    assert main(explain(model, out, source)) == 0
    capsys.readouterr()
    assert main(explain(model, out, source, extra=["--dicom"])) == 0
    assert "0 explained, 1 completed from the map store" in capsys.readouterr().out
    assert {"film.sr.dcm", "film.gsps.dcm"} <= {p.name for p in out.glob("*.dcm")}
    out2 = tmp_path / "out2"
    real = dicom_export.write_dicom_outputs

    def failing(*args, **kwargs):
        raise dicom_export.FileProblem(source, "cannot write the GSPS (a test's failure)")

    monkeypatch.setattr(dicom_export, "write_dicom_outputs", failing)
    assert main(explain(model, out2, source, extra=["--dicom"])) == 1
    monkeypatch.setattr(dicom_export, "write_dicom_outputs", real)
    capsys.readouterr()
    assert main(explain(model, out2, source, extra=["--dicom"])) == 0
    assert "0 explained, 1 completed from the map store, 0 already done, 0 failed" in capsys.readouterr().out
    assert (out2 / "film.gsps.dcm").exists()
    assert main(explain(model, out2, source, extra=["--dicom"])) == 0
    assert "1 already done" in capsys.readouterr().out


# weak spot: output names do not depend on the other inputs


def test_output_names_do_not_depend_on_the_other_inputs(corpus, tmp_path, capsys):
    root, model, _ = corpus
    a, b = root / "a" / "1-1.png", root / "b" / "1-1.png"
    out = tmp_path / "out"
    assert main(explain(model, out, a, b)) == 0
    names = {json.loads(p.read_text())["source"]: p.stem for p in out.glob("*.json")}
    assert names[str(a)] == "1-1" and names[str(b)].startswith("1-1-") and len(names[str(b)]) == len("1-1-") + 8
    before = (out / "1-1.json").read_text()
    capsys.readouterr()
    assert main(explain(model, out, b)) == 0  # b alone: its own name again, a's outputs untouched
    assert "0 explained, 1 already done" in capsys.readouterr().out
    assert (out / "1-1.json").read_text() == before
    # the other order into a fresh folder: b first keeps the plain name, a added later gets its digest name
    fresh = tmp_path / "fresh"
    assert main(explain(model, fresh, b)) == 0
    assert main(explain(model, fresh, a, b)) == 0
    assert json.loads((fresh / "1-1.json").read_text())["source"] == str(b)
    assert {json.loads(p.read_text())["source"] for p in fresh.glob("1-1-*.json")} == {str(a)}


def test_an_entry_whose_arrays_changed_fails_its_checksum(store_and_key):
    store, key, _ = store_and_key
    path = store.save(key, {"prediction": np.ones((2, 4, 4), np.float32)})
    with np.load(path) as data:
        meta = data["__entry__"]
    np.savez_compressed(path, __entry__=meta, prediction=np.zeros((2, 4, 4), np.float32))  # a sound zip, other numbers
    assert store.load(key) is None
    assert "do not match the checksum" in str(store.damaged[0]) and key.image.path in str(store.damaged[0])
    store.save(key, {"prediction": np.ones((2, 4, 4), np.float32)})
    assert store.load(key)["prediction"].sum() == 32


def test_an_entry_without_a_map_asked_for_now_is_computed_again(store_and_key):
    from correlax.pipelines.pointing_game import entry_for

    store, key, _ = store_and_key
    store.save(key, {"prediction": np.ones((2, 4, 4), np.float32)})  # written before "cov_pred" existed
    computed = []

    def compute():
        computed.append(1)
        return {"prediction": np.ones((2, 4, 4), np.float32), "cov_pred": np.zeros((2, 4, 4), np.float32)}

    has_all = lambda entry: "cov_pred" in entry  # noqa: E731
    assert set(entry_for(key, [store], compute, "x.png", lambda entry: True)) == {"prediction"}  # enough as it is
    assert set(entry_for(key, [store], compute, "x.png", has_all)) == {"prediction", "cov_pred"} and computed == [1]
    assert set(entry_for(key, [store], compute, "x.png", has_all)) == {"prediction", "cov_pred"} and computed == [1]
