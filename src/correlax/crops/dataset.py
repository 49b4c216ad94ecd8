"""A torch Dataset of crops over the records of a manifest, with a cache of prepared images.

Each image is read and pre-processed once: the prepared image is kept in a small in-memory LRU
and, when a cache folder is given, written there as ``.npy`` (read back memory-mapped), so a second
data set over the same images (validation, evaluation, a resumed run) decodes no DICOM again.
The crops of the plan are cut out once, at construction, into a uint8 bank; epochs read the bank.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from correlax.crops.masking import MaskAugmentation
from correlax.crops.sampler import CropSettings, extract_crop, plan_crops
from correlax.geometry import AnnotationBox
from correlax.data.records import ImageRecord, Manifest
from correlax.fileio import atomic_write_bytes
from correlax.io import ImageReadError
from correlax.labels import NO_FINDING
from correlax.preprocess import PreprocessSettings, breast_mask, load_prepared

log = logging.getLogger(__name__)


@dataclass
class PreparedEntry:
    """What the crop planner needs from one prepared image."""

    image: np.ndarray  # (H, W, 3) uint8
    breast_box: tuple[int, int, int, int]
    findings: list[tuple[str, AnnotationBox]]  # boxed findings mapped to prepared pixels
    spacing: tuple[float, float] | None

    def tissue(self) -> np.ndarray:
        """Boolean mask of breast tissue (:func:`correlax.preprocess.breast_mask`)."""
        return breast_mask(self.image[..., 0])


class PreparedCache:
    """Prepared images keyed by file identity, settings and findings; memory LRU plus optional .npy folder."""

    def __init__(self, settings: PreprocessSettings, cache_dir: str | Path | None = None, max_items: int = 32):
        self.settings = settings
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.max_items = max_items
        self._memory: OrderedDict[str, PreparedEntry] = OrderedDict()
        self.prepared = 0  # images decoded and pre-processed by this cache (for tests and logs)

    def _key(self, path: Path, record: ImageRecord) -> str:
        stat = path.stat()
        ident = [str(path.resolve()), stat.st_size, stat.st_mtime_ns, self.settings.to_dict(), record.spacing,
                 [(f.label, f.box) for f in record.findings]]
        return hashlib.sha1(json.dumps(ident, default=str).encode()).hexdigest()

    def get(self, manifest: Manifest, record: ImageRecord) -> PreparedEntry:
        """The prepared image of ``record``, from memory or the disk cache, prepared and stored when missing."""
        path = manifest.resolve(record)
        try:
            key = self._key(path, record)
        except OSError as e:
            raise ImageReadError(path, e.strerror or str(e)) from e
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        entry = self._load(key) or self._prepare(path, record, key)
        self._memory[key] = entry
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)
        return entry

    def _prepare(self, path: Path, record: ImageRecord, key: str) -> PreparedEntry:
        try:
            prepared = load_prepared(path, self.settings, record.spacing)
        except ValueError as e:
            raise ImageReadError(path, str(e)) from e
        self.prepared += 1
        findings = [(f.label, prepared.map_box(f.box)) for f in record.findings if f.box is not None]
        entry = PreparedEntry(prepared.image, tuple(int(v) for v in prepared.breast_box), findings, prepared.spacing)
        if self.cache_dir is not None:
            buffer = io.BytesIO()
            np.save(buffer, entry.image)
            meta = {"breast_box": entry.breast_box, "findings": entry.findings, "spacing": entry.spacing}
            atomic_write_bytes(self.cache_dir / f"{key}.npy", buffer.getvalue())
            atomic_write_bytes(self.cache_dir / f"{key}.json", json.dumps(meta).encode())
        return entry

    def _load(self, key: str) -> PreparedEntry | None:
        if self.cache_dir is None:
            return None
        npy, meta_path = self.cache_dir / f"{key}.npy", self.cache_dir / f"{key}.json"
        try:
            meta = json.loads(meta_path.read_text())
            image = np.load(npy, mmap_mode="r")
        except (OSError, ValueError):
            return None  # absent or damaged: prepare again
        findings = [(label, tuple(box)) for label, box in meta["findings"]]
        spacing = tuple(meta["spacing"]) if meta["spacing"] else None
        return PreparedEntry(image, tuple(meta["breast_box"]), findings, spacing)


@dataclass(frozen=True)
class CropInfo:
    """Where a dataset item came from: the image, the crop's box in prepared-image pixels, its labels."""
    image_id: str
    box: AnnotationBox  # prepared-image pixels
    labels: tuple[str, ...]


class CropDataset(Dataset):
    """Crops of the given records: items are ``(image (3, S, S) float in [0, 1], target (L,) float)``.

    Crops are planned with a generator seeded by ``(seed, record index)`` and cut out once. Images that
    cannot be read are skipped and listed in :attr:`failures` as ``(path, reason)``. Crops whose labels
    are all outside ``labels`` are dropped. ``mask_aug`` masks crops after ``transform``.
    """

    def __init__(
        self,
        manifest: Manifest,
        records: list[ImageRecord],
        labels: tuple[str, ...],
        cache: PreparedCache,
        input_size: int = 256,
        crop_settings: CropSettings = CropSettings(),
        seed: int = 0,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        mask_aug: MaskAugmentation | None = None,
    ):
        self.labels = tuple(labels)
        self.transform = transform
        self.mask_aug = mask_aug
        self.failures: list[tuple[str, str]] = []
        self.crops: list[CropInfo] = []
        self.spacings: list[tuple[float, float]] = []
        bank: list[np.ndarray] = []
        for index, record in enumerate(records):
            try:
                entry = cache.get(manifest, record)
            except ImageReadError as e:
                log.warning("skipping %s", e)
                self.failures.append((str(e.path), e.cause))
                continue
            if entry.spacing:
                self.spacings.append(entry.spacing)
            rng = np.random.default_rng([seed, index])
            boxed_negatives = crop_settings.normal_crops_per_boxed_image + crop_settings.skin_crops_per_image
            wants_tissue = boxed_negatives > 0 if entry.findings else record.is_normal
            tissue = entry.tissue() if wants_tissue else None
            for crop in plan_crops(entry.findings, tissue, rng, crop_settings):
                if not set(crop.labels) & set(self.labels):
                    continue
                self.crops.append(CropInfo(record.image_id, crop.box, crop.labels))
                bank.append(extract_crop(entry.image, crop.box, input_size))
        self.bank = np.stack(bank) if bank else np.zeros((0, input_size, input_size, 3), np.uint8)
        self.targets = torch.tensor(
            [[float(label in c.labels) for label in self.labels] for c in self.crops], dtype=torch.float32
        ).reshape(len(self.crops), len(self.labels))

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(self.bank[i])).permute(2, 0, 1).float() / 255.0
        if self.transform is not None:
            x = self.transform(x)
        if self.mask_aug is not None:
            x = self.mask_aug(x, normal=self.crops[i].labels == (NO_FINDING,))
        return x, self.targets[i]

    def sample_weights(self) -> torch.Tensor:
        """Per-crop weight for a class-balanced sampler: inverse frequency of the crop's rarest label."""
        counts = self.targets.sum(0).clamp(min=1)
        return (self.targets / counts).max(1).values  # every crop carries at least one of the labels
