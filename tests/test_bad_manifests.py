"""Manifests are validated against a schema: each bad value is one error naming the file, record and field."""

from __future__ import annotations

import json

import pytest

from correlax.cli.main import main
from correlax.data import ManifestError
from correlax.data.records import Manifest

GOOD = {
    "version": 1, "source": "t", "root": ".", "missing": [],
    "records": [
        {"image_id": "ok", "path": "ok.png", "patient_id": "p0", "split": "test", "findings": []},
        {"image_id": "a", "path": "a.png", "patient_id": "p1", "split": "test", "spacing": [0.2, 0.2],
         "findings": [{"label": "mass", "box": [1, 2, 30, 40]}]},
    ],
}  # fmt: skip


def bad(tmp_path, change) -> str:
    payload = json.loads(json.dumps(GOOD))
    change(payload)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(payload))  # json.dumps writes NaN as a bare NaN, as a hand-made file may hold it
    with pytest.raises(ManifestError) as caught:
        Manifest.load(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def record(payload) -> dict:
    return payload["records"][1]


CASES = {
    "nan box": (lambda p: record(p)["findings"][0].update(box=[float("nan"), 2, 30, 40]),
                "record 1 (image 'a'): field findings[0].box[0]: Input should be a finite number"),
    "negative and zero spacing": (lambda p: record(p).update(spacing=[-0.2, 0.2]),
                                  "record 1 (image 'a'): field spacing[0]: Input should be greater than 0"),
    "split as a list": (lambda p: record(p).update(split=["test"]),
                        "record 1 (image 'a'): field split: Input should be 'train', 'val' or 'test', got ['test']"),
    "3-number box": (lambda p: record(p)["findings"][0].update(box=[1, 2, 30]),
                     "record 1 (image 'a'): field findings[0].box"),
    "numeric path": (lambda p: record(p).update(path=12), "record 1 (image 'a'): field path: Input should be a valid string, got 12"),
    "records as a dict": (lambda p: p.update(records={"a": record(p)}), "m.json: field records: Input should be a valid list"),
    "inverted box": (lambda p: record(p)["findings"][0].update(box=[30, 2, 1, 40]),
                     "record 1 (image 'a'): field findings[0].box: Value error, box has xmin >= xmax"),
    "unknown label": (lambda p: record(p)["findings"][0].update(label="tumour"), "field findings[0].label: Value error, unknown label 'tumour'"),
    "misspelt field": (lambda p: record(p).update(spilt="test"), "record 1 (image 'a'): field spilt: Unexpected keyword argument"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_bad_value_is_one_error_naming_file_record_and_field(tmp_path, case):
    change, expected = CASES[case]
    problem = bad(tmp_path, change)
    assert problem.startswith(str(tmp_path / "m.json") + ":") and expected in problem, problem


def test_a_top_level_list_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps([GOOD]))
    with pytest.raises(ManifestError, match=r"m.json: a manifest is a JSON object"):
        Manifest.load(path)


def test_a_good_manifest_reads_and_round_trips(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(GOOD))
    manifest = Manifest.load(path)
    assert manifest.records[1].findings[0].box == (1.0, 2.0, 30.0, 40.0) and manifest.records[1].spacing == (0.2, 0.2)
    manifest.save(tmp_path / "again.json")
    assert Manifest.load(tmp_path / "again.json").records == manifest.records


def test_evaluate_refuses_a_bad_manifest_with_its_record(tmp_path, caplog):
    from correlax.labels import LABELS
    from correlax.models import CheckpointInfo, create_model, save_checkpoint

    model = save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny", LABELS[:2]), CheckpointInfo(labels=LABELS[:2], backbone="tiny"))
    payload = json.loads(json.dumps(GOOD))
    record(payload).update(split=["test"])
    path = tmp_path / "m.json"
    path.write_text(json.dumps(payload))
    assert main(["evaluate", "--model", str(model), "--data", str(path), "--out", str(tmp_path / "o")]) == 1
    assert "m.json: record 1 (image 'a'): field split" in caplog.text


def test_a_manifest_or_table_that_is_a_fifo_or_a_device_is_refused_unread(tmp_path):
    """A FIFO would block the reader forever and /dev/zero never ends: both refused by name, never opened."""
    import os

    from correlax.data.csvfile import read_rows
    from correlax.data.validate import Problems

    fifo = tmp_path / "m.json"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="FIFO"):
        Manifest.load(fifo)
    zero = tmp_path / "t.csv"
    zero.symlink_to("/dev/zero")
    with pytest.raises(FileNotFoundError, match="character device"):
        read_rows(zero, ("image_path",), Problems())
