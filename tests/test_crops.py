"""Crop sampler (pure, seeded) and the crop Dataset with its prepared-image cache."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from correlax.crops import CropDataset, CropSettings, PreparedCache, crop_labels, extract_crop, plan_crops
from correlax.crops.sampler import (box_area, box_center, contains_point, intersection_area, sample_box_crops,
                                   sample_normal_crops, skin_line)
from correlax.data.records import Finding, ImageRecord, Manifest
from correlax.preprocess import PreprocessSettings


def test_box_crops_hold_the_centre_within_area_and_aspect_ranges():
    box = (100.0, 200.0, 160.0, 240.0)
    settings = CropSettings()
    crops = sample_box_crops(box, 500, np.random.default_rng(0), settings)
    ratios = np.array([box_area(c) / box_area(box) for c in crops])
    aspects = np.array([(c[2] - c[0]) / (c[3] - c[1]) for c in crops])
    assert all(contains_point(c, *box_center(box)) for c in crops)
    assert ratios.min() >= 0.05 - 1e-9 and ratios.max() <= 5 + 1e-9
    assert ratios.min() < 0.1 and ratios.max() > 3  # the whole range is used
    assert aspects.min() >= 0.33 - 1e-9 and aspects.max() <= 1.66 + 1e-9


def test_window_scale_crops_are_squares_near_the_window_side_whatever_the_box():
    settings = CropSettings(window_side=64.0, window_jitter=1.25)
    tissue = np.ones((400, 400), bool)
    for box in [(100.0, 100.0, 104.0, 104.0), (50.0, 50.0, 350.0, 300.0)]:  # a speck and a box wider than a window
        crops = sample_box_crops(box, 300, np.random.default_rng(0), settings)
        sides = np.array([[c[2] - c[0], c[3] - c[1]] for c in crops])
        assert all(contains_point(c, *box_center(box)) for c in crops)
        np.testing.assert_allclose(sides[:, 0], sides[:, 1])
        assert sides.min() >= 64 / 1.25 - 1e-9 and sides.max() <= 64 * 1.25 + 1e-9
        assert sides.min() < 56 and sides.max() > 72  # the jitter's range is used
    normal = np.array([c[2] - c[0] for c in sample_normal_crops(tissue, 100, np.random.default_rng(1), settings)])
    assert normal.min() >= 64 / 1.25 - 1e-9 and normal.max() <= 64 * 1.25 + 1e-9


def test_plans_are_reproducible_from_the_seed():
    findings = [("mass", (10.0, 10.0, 50.0, 60.0))]
    a = plan_crops(findings, None, np.random.default_rng(7))
    b = plan_crops(findings, None, np.random.default_rng(7))
    c = plan_crops(findings, None, np.random.default_rng(8))
    assert a == b and a != c


def test_crop_labels_rule():
    findings = [("mass", (0.0, 0.0, 10.0, 10.0)), ("calcification", (20.0, 0.0, 30.0, 10.0))]
    assert crop_labels((0, 0, 10, 10), findings) == ("mass",)
    assert crop_labels((0, 0, 30, 10), findings) == ("calcification", "mass")
    assert crop_labels((4.0, 0, 26.0, 4.0), findings) == ()  # 40% of each box, centres outside
    assert crop_labels((4.0, 0, 26.0, 6.0), findings) == ("calcification", "mass")  # 60% of each box
    assert crop_labels((24.0, 4.0, 26.0, 6.0), findings) == ("calcification",)  # a small crop on the centre


def test_normal_crops_lie_on_tissue_and_avoid_boxes():
    tissue = np.zeros((200, 200), bool)
    tissue[50:150, 20:120] = True
    avoid = [(60.0, 60.0, 100.0, 100.0)]
    settings = CropSettings(normal_side_range=(8.0, 20.0))
    crops = sample_normal_crops(tissue, 50, np.random.default_rng(1), settings, avoid=avoid)
    assert len(crops) == 50
    for c in crops:
        cx, cy = box_center(c)
        assert tissue[int(cy), int(cx)]
        assert intersection_area(c, avoid[0]) == 0
        assert 8 - 1e-9 <= c[2] - c[0] <= 20 + 1e-9
    assert sample_normal_crops(np.zeros((10, 10), bool), 5, np.random.default_rng(0)) == []


def test_boxed_images_give_no_finding_crops_away_from_their_boxes_only_when_asked():
    tissue = np.zeros((300, 300), bool)
    tissue[20:280, 20:280] = True
    findings = [("mass", (100.0, 100.0, 140.0, 150.0)), ("calcification", (200.0, 40.0, 220.0, 60.0))]
    paper = plan_crops(findings, tissue, np.random.default_rng(0), CropSettings(crops_per_box=3))
    assert len(paper) == 6 and all(c.labels != ("no_finding",) for c in paper)
    settings = CropSettings(crops_per_box=3, normal_crops_per_boxed_image=5, window_side=32.0)
    plan = plan_crops(findings, tissue, np.random.default_rng(0), settings)
    normal = [c for c in plan if c.labels == ("no_finding",)]
    assert len(plan) == 11 and len(normal) == 5
    assert all(intersection_area(c.box, b) == 0 for c in normal for _, b in findings)
    assert plan_crops(findings, None, np.random.default_rng(0), settings) == plan[:6]  # no tissue, no normal crops


def test_skin_line_crops_are_no_finding_crops_centred_on_the_breast_edge_away_from_the_boxes():
    tissue = np.zeros((300, 300), bool)
    tissue[40:260, 0:200] = True  # the chest wall on the image's left border
    edge = skin_line(tissue)
    assert edge[40, 100] and edge[259, 100] and edge[100, 199] and edge[100, 0] and not edge[100, 100]
    assert edge.sum() == 2 * 200 + 2 * 218
    findings = [("mass", (150.0, 20.0, 230.0, 90.0))]  # covers part of the top edge
    settings = CropSettings(crops_per_box=3, window_side=32.0, skin_crops_per_image=40)
    plan = plan_crops(findings, tissue, np.random.default_rng(0), settings)
    skin = [c for c in plan if c.labels == ("no_finding",)]
    assert len(plan) == 43 and len(skin) == 40
    centres = [(int((c.box[0] + c.box[2]) / 2), int((c.box[1] + c.box[3]) / 2)) for c in skin]
    assert all(edge[y, x] for x, y in centres)
    assert all(intersection_area(c.box, b) == 0 for c in skin for _, b in findings)
    # without them the plan is the one drawn before the option existed (same draws)
    without = plan_crops(findings, tissue, np.random.default_rng(0), CropSettings(crops_per_box=3, window_side=32.0))
    assert without == plan[:3]


def test_extract_crop_pads_with_zeros_and_resizes():
    image = np.full((40, 40, 3), 200, np.uint8)
    out = extract_crop(image, (-20.0, -20.0, 20.0, 20.0), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[:6, :6].max() == 0 and out[10:, 10:].min() == 200


def _write_toy(root, n=4):
    rng = np.random.default_rng(0)
    records = []
    (root / "images").mkdir(parents=True)
    for i in range(n):
        img = np.zeros((128, 128), np.uint8)
        cv2.circle(img, (40, 64), 50, 80, -1)
        img = np.clip(img + (img > 0) * rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)
        findings = [Finding("no_finding")]
        if i % 2:
            cv2.circle(img, (50, 60), 8, 250, -1)
            findings = [Finding("mass", (40, 50, 60, 70))]
        cv2.imwrite(str(root / f"images/{i}.png"), img)
        records.append(ImageRecord(str(i), f"images/{i}.png", f"p{i}", "L", "CC", "train", findings))
    records.append(ImageRecord("bad", "images/missing.png", "px", "L", "CC", "train", [Finding("mass", (0, 0, 5, 5))]))
    return Manifest(records, root=root)


def test_dataset_targets_cache_and_failures(tmp_path):
    manifest = _write_toy(tmp_path)
    settings = CropSettings(crops_per_box=3, crops_per_normal_image=2, normal_side_range=(10.0, 30.0))
    cache = PreparedCache(PreprocessSettings(), tmp_path / "cache", max_items=2)
    labels = ("no_finding", "mass")
    data = CropDataset(manifest, manifest.records, labels, cache, 32, settings, seed=3)
    assert len(data) == 2 * 3 + 2 * 2
    assert [f[0] for f in data.failures] == [str(tmp_path / "images/missing.png")]
    x, y = data[0]
    assert x.shape == (3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert data.targets.sum(0).tolist() == [4.0, 6.0]
    w = data.sample_weights()
    assert w[data.targets[:, 0] > 0].sum() == pytest.approx(w[data.targets[:, 1] > 0].sum())  # balanced classes
    assert cache.prepared == 4 and len(list((tmp_path / "cache").glob("*.npy"))) == 4

    again = PreparedCache(PreprocessSettings(), tmp_path / "cache")
    data2 = CropDataset(manifest, manifest.records, labels, again, 32, settings, seed=3)
    assert again.prepared == 0  # read back from the .npy cache
    assert np.array_equal(data.bank, data2.bank)
    assert [c.box for c in data.crops] == [c.box for c in data2.crops]

    only_mass = CropDataset(manifest, manifest.records, ("mass",), again, 32, settings, seed=3)
    assert len(only_mass) == 6 and only_mass.targets.min() == 1

    negatives = dataclasses.replace(settings, normal_crops_per_boxed_image=1)
    with_negatives = CropDataset(manifest, manifest.records, labels, again, 32, negatives, seed=3)
    assert with_negatives.targets.sum(0).tolist() == [6.0, 6.0]  # one more No Finding crop per boxed image
    skin = dataclasses.replace(settings, skin_crops_per_image=2)
    with_skin = CropDataset(manifest, manifest.records, labels, again, 32, skin, seed=3)
    assert with_skin.targets.sum(0).tolist() == [4.0 + 2 * 4, 6.0]  # two more on each readable image's skin line


def test_mask_augmentation_masks_the_chosen_crops_and_keeps_labels(tmp_path):
    from correlax.crops import MaskAugmentation
    from correlax.masks import mask_grids, upsample

    manifest = _write_toy(tmp_path)
    settings = CropSettings(crops_per_box=3, crops_per_normal_image=2, normal_side_range=(10.0, 30.0))
    cache = PreparedCache(PreprocessSettings())
    labels = ("no_finding", "mass")
    plain = CropDataset(manifest, manifest.records, labels, cache, 32, settings, seed=3)
    normal = [i for i, c in enumerate(plain.crops) if c.labels == ("no_finding",)]
    lesion = [i for i in range(len(plain)) if i not in normal]

    def masked_share(aug: MaskAugmentation, rows: list[int], repeats: int = 20) -> float:
        data = CropDataset(manifest, manifest.records, labels, cache, 32, settings, seed=3, mask_aug=aug)
        changed = 0
        for i in rows * repeats:
            x, y = data[i]
            x0, y0 = plain[i]
            assert torch.equal(y, y0)  # labels unchanged
            changed += not torch.equal(x, x0)
        return changed / (len(rows) * repeats)

    torch.manual_seed(0)
    assert masked_share(MaskAugmentation(1.0), normal) == 1.0
    assert masked_share(MaskAugmentation(1.0), lesion) == 0.0  # default: No Finding crops only
    assert masked_share(MaskAugmentation(1.0, on="all"), lesion) == 1.0
    assert 0.3 < masked_share(MaskAugmentation(0.5, on="all"), list(range(len(plain)))) < 0.7
    assert masked_share(MaskAugmentation(0.0, on="all"), lesion) == 0.0

    # a masked crop is the explainer's masking of it: one of mask_grids' 8x8 grids, upsampled, applied with the fill
    x0 = plain[normal[0]][0]
    for fill in ("black", "mean"):
        torch.manual_seed(1)
        x = MaskAugmentation(1.0, fill=fill, seed=5)(x0, normal=True)
        torch.manual_seed(1)
        torch.rand(())
        window_id, mask_id = torch.randint(0, 1 << 62, (2, 1))
        m = upsample(mask_grids(5, window_id, mask_id, 8, 0.5), 32)[0]
        assert 0 < m.mean() < 1
        expected = x0 * m if fill == "black" else x0 * m + x0.mean(dim=(1, 2), keepdim=True) * (1 - m)
        torch.testing.assert_close(x, expected)
    with pytest.raises(ValueError, match="fraction"):
        MaskAugmentation(1.5)
