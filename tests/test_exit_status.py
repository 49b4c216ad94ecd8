"""One rule for every command: it exits 1 when it skipped an input (listed by name), after doing the rest."""

from __future__ import annotations

import json

import pytest

from correlax.cli.main import main
from correlax.data.records import Finding, ImageRecord, Manifest
from test_training import toy_manifest


@pytest.fixture(scope="module")
def with_a_missing_image(tmp_path_factory):
    """The toy manifest plus one training and one test record whose image file is not there."""
    root = tmp_path_factory.mktemp("toy")
    manifest = Manifest.load(toy_manifest(root, n_patients=10))
    for split in ("train", "test"):
        manifest.records.append(ImageRecord(f"gone-{split}", f"images/gone-{split}.png", f"gone-{split}", "L", "CC", split,
                                            [Finding("mass", (10, 10, 30, 30))]))  # fmt: skip
    path = root / "manifest.json"
    manifest.save(path)
    return path


def test_train_and_evaluate_exit_1_naming_the_skipped_image(with_a_missing_image, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--data", str(with_a_missing_image), "--out", str(run), "--backbone", "tiny", "--pretrained", "none",
            "--input-size", "32", "--batch-size", "8", "--crops-per-box", "2", "--epochs", "1", "--steps-per-epoch", "2",
            "--accelerator", "cpu"]  # fmt: skip
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert (run / "model.safetensors").is_file() and "skipped" in out and "gone-train.png" in out
    assert json.loads((run / "validation.json").read_text())["failures"][0]["path"].endswith("gone-train.png")
    argv = ["evaluate", "--model", str(run / "model.safetensors"), "--data", str(with_a_missing_image), "--out", str(tmp_path / "e")]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert (tmp_path / "e" / "metrics.json").is_file() and "skipped" in out and "gone-test.png" in out


def test_crossval_lists_what_each_fold_skipped_and_exits_1(tmp_path, capsys):
    from correlax.cli.crossval import crossval_failures
    from correlax.cli.outputs import report_skipped

    (tmp_path / "fold0" / "model").mkdir(parents=True)
    (tmp_path / "fold0" / "model" / "validation.json").write_text(
        json.dumps({"report": None, "failures": [["a.png", "not a PNG"]]})  # the pairs older runs wrote
    )
    pooled = {"folds": [{"fold": 0, "failures": []}, {"fold": 1, "failures": [{"path": "b.dcm", "reason": "truncated"}]}]}
    failures = crossval_failures(tmp_path, pooled)
    assert failures == [{"path": "a.png", "reason": "fold 0: not a PNG"}, {"path": "b.dcm", "reason": "fold 1: truncated"}]
    assert report_skipped(failures) == 1 and report_skipped([]) == 0
    assert "skipped b.dcm: fold 1: truncated" in capsys.readouterr().out
