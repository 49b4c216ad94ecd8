"""Hostile checkpoints: pickles refused even under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, malformed metadata and
NaN weights refused with what is wrong; metrics JSON strict."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from correlax.cli.main import main
from correlax.evaluation.classification import classification_report, format_report
from correlax.fileio import strict_json
from correlax.labels import LABELS
from correlax.models import CheckpointError, CheckpointInfo, create_model, load_checkpoint, save_checkpoint
from correlax.models.checkpoint import METADATA_KEY
from correlax.training.run import AtomicCheckpointIO
from test_training import toy_manifest


class Planted:
    """Unpickling this creates ``marker``: proof that code in the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def planted(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "ran"
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "payload": Planted(marker)}, path)
    return path, marker


def test_planted_pickle_refused_as_unsafe(planted):
    path, marker = planted
    for load in (load_checkpoint, AtomicCheckpointIO().load_checkpoint):
        with pytest.raises(CheckpointError, match="last.ckpt: refused unsafe checkpoint") as info:
            load(path)
        assert "truncated" not in str(info.value)
    assert not marker.exists()


def test_train_resume_refuses_a_planted_last_ckpt(planted, caplog):
    path, marker = planted
    data = toy_manifest(path.parents[2] / "toy", n_patients=5)
    args = ["train", "--data", str(data), "--out", str(path.parents[1]), "--backbone", "tiny", "--pretrained", "none",
            "--input-size", "32", "--epochs", "1", "--accelerator", "cpu", "--resume"]  # fmt: skip
    with caplog.at_level(logging.ERROR):
        assert main(args) == 1
    assert "refused unsafe checkpoint" in caplog.text and not marker.exists()


def write_model(path, meta, state=None):
    state = state if state is not None else create_model("tiny", LABELS[:2]).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata={METADATA_KEY: json.dumps(meta)})
    return path


GOOD = CheckpointInfo(labels=LABELS[:2], backbone="tiny").to_dict()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"input_size": "256"}, "input_size must be a whole number of pixels from 16 to 4096, got '256'"),
        ({"input_size": 20000}, "got 20000"),
        ({"preprocess": {"clahe": True}}, "unknown PreprocessSettings keys: ['clahe']"),
        ({"labels": "mass"}, "labels must be a non-empty list"),
        ({"labels": ["tumour"]}, "unknown label 'tumour'"),
        ({"thresholds": {"mass": 7}}, "thresholds must map"),
    ],
)
def test_malformed_metadata_says_what_is_wrong(tmp_path, change, expected):
    path = write_model(tmp_path / "m.safetensors", {**GOOD, **change})
    with pytest.raises(CheckpointError, match="malformed checkpoint metadata") as info:
        load_checkpoint(path)
    assert expected in str(info.value) and "m.safetensors" in str(info.value)


def test_metadata_that_is_a_list(tmp_path):
    with pytest.raises(CheckpointError, match="metadata: a list, expected an object"):
        load_checkpoint(write_model(tmp_path / "m.safetensors", [GOOD]))


def test_nan_weights_refused(tmp_path):
    state = create_model("tiny", LABELS[:2]).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    with pytest.raises(CheckpointError, match=f"weight {name} holds NaN"):
        load_checkpoint(write_model(tmp_path / "m.safetensors", GOOD, state))


def test_undefined_auc_is_null_in_json_and_a_dash_in_the_table():
    report = classification_report([[1, 0], [0, 0]], [[0.9, 0.2], [0.1, 0.4]], ("mass", "calcification"))
    text = strict_json(report)
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert parsed["labels"]["calcification"]["roc_auc"] is None and parsed["labels"]["mass"]["roc_auc"] == 1.0
    row = next(line for line in format_report(parsed).splitlines() if line.startswith("calcification"))
    assert row.split()[2] == "–"


def test_evaluate_spacing_option_and_strict_metrics(tmp_path):
    from correlax.preprocess import PreprocessSettings

    data = toy_manifest(tmp_path / "toy", n_patients=5)  # PNGs: no spacing in files or manifest
    info = CheckpointInfo(labels=("mass", "lymph_node"), backbone="tiny", input_size=32,
                          preprocess=PreprocessSettings(target_spacing=0.4).to_dict())  # fmt: skip
    model = save_checkpoint(tmp_path / "m.safetensors", create_model("tiny", info.labels), info)
    base = ["evaluate", "--model", str(model), "--data", str(data), "--split", "train", "--out"]
    assert main([*base, str(tmp_path / "no-spacing")]) == 1  # every image skipped (named below): exit status 1
    failed = json.loads((tmp_path / "no-spacing" / "metrics.json").read_text())
    assert failed["crops"] == 0 and all("pixel spacing unknown" in f["reason"] for f in failed["failures"])
    assert main([*base, str(tmp_path / "e"), "--spacing", "0.2"]) == 0
    text = (tmp_path / "e" / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.json"))
    assert metrics["crops"] > 0 and metrics["failures"] == []
    assert metrics["labels"]["lymph_node"]["roc_auc"] is None  # no lymph node in the toy data
