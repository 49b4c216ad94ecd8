"""``benchmarks/masked_views.py``: P_c of masked against unmasked views, on a model whose answer is known."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark

from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.masks import apply_masks, mask_grids, upsample
from correlax.labels import MASS, NO_FINDING
from correlax.models import CheckpointInfo, create_model, save_checkpoint
from correlax.models.contract import ClassifierOutput


@pytest.fixture(scope="module")
def views():
    return load_benchmark("masked_views")


class BrightNet(torch.nn.Module):
    """P(bright) rises with the mean grey value; features: mean, spread and a texture response."""

    labels = ("bright",)

    def forward(self, x: torch.Tensor) -> ClassifierOutput:
        grey = x.mean(1)
        feats = torch.stack([grey.mean((1, 2)), grey.std((1, 2)), (grey[:, 1:] - grey[:, :-1]).abs().mean((1, 2))], 1)
        return ClassifierOutput(20 * (feats[:, :1] - 0.4), feats)


def _windows(n: int = 6, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (0.4 + 0.1 * torch.rand(n, 1, size, size, generator=g)).expand(n, 3, size, size).clone()


def test_black_masks_lower_brightness_mean_fill_keeps_it(views):
    w = _windows()
    black = views.masked_view_stats(BrightNet(), w, 16, "black")
    assert (black["p_masked"] < black["p_unmasked"]).all()
    summary = views.summarise(black, ("bright",))["bright"]
    assert summary["masking_raises"] == 0.0 and summary["p_masked"] < summary["p_unmasked"]
    mean = views.masked_view_stats(BrightNet(), w, 16, "mean")
    np.testing.assert_allclose(mean["p_masked"], mean["p_unmasked"], atol=0.02)


def test_correlation_is_pearson_of_the_explainers_masks(views):
    w = _windows(n=3)
    stats = views.masked_view_stats(BrightNet(), w, 12, "black", seed=4, batch=12)  # one window per batch
    i = 2
    masks = upsample(mask_grids(4, torch.full((12,), i), torch.arange(12), 8, 0.5), 32)
    out, plain = BrightNet()(apply_masks(w[[i] * 12], masks)), BrightNet()(w[i : i + 1])
    d = torch.nn.functional.cosine_similarity(plain.features.double(), out.features.double()).numpy()
    p = torch.sigmoid(out.logits.double())[:, 0].numpy()
    assert stats["r"][i, 0] == pytest.approx(np.corrcoef(d, p)[0, 1], abs=1e-9)
    assert stats["p_masked"][i, 0] == pytest.approx(p.mean())


def test_script_writes_json_per_fill_and_group(views, tmp_path, capsys):
    torch.manual_seed(0)
    labels = (NO_FINDING, MASS)
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", create_model("tiny", labels), CheckpointInfo(labels, "tiny", 32))
    records = []
    for i in range(3):
        img = np.zeros((96, 80), np.uint8)
        cv2.ellipse(img, (0, 48), (70, 44), 0, -90, 90, 120, -1)
        if i < 2:
            cv2.circle(img, (25, 40), 6, 250, -1)
        cv2.imwrite(str(tmp_path / f"img{i}.png"), img)
        findings = [Finding(MASS, (18, 33, 32, 47))] if i < 2 else [Finding(NO_FINDING)]
        records.append(ImageRecord(f"img{i}", f"img{i}.png", f"p{i}", split="test", findings=findings))
    records.append(ImageRecord("gone", "gone.png", "p9", split="test", findings=[Finding(NO_FINDING)]))
    Manifest(records, root=tmp_path).save(tmp_path / "manifest.json")
    out = tmp_path / "views.json"
    args = ["--model", str(ckpt), "--data", str(tmp_path / "manifest.json"), "--masks", "8", "--out", str(out)]
    assert views.main([*args, "--fills", "black", "blur", "--normal-per-image", "3"]) == 0
    report = json.loads(out.read_text())
    assert report["provenance"]["commit"]
    assert set(report["results"]) == {"black", "blur"}
    for groups in report["results"].values():
        assert groups[MASS]["windows"] == 2 and groups["normal"]["windows"] == 3
        for entry in groups.values():
            for v in entry["per_label"].values():
                assert 0 <= v["p_unmasked"] <= 1 and 0 <= v["masking_raises"] <= 1 and -1 <= v["r_mean"] <= 1
    assert [f["path"] for f in report["failures"]] == [str(tmp_path / "gone.png")]
    assert "written" in capsys.readouterr().out
