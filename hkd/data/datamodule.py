"""The LightningDataModule: records -> splits -> decoded cache -> datasets -> loaders."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import numpy as np
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset, WeightedRandomSampler

from hkd.data.cache import build_cache, open_cache
from hkd.data.dataset import ChestXrayDataset
from hkd.data.formats import load_records
from hkd.data.image_record import Record
from hkd.data.shortcut import ShortcutSpec, marker_codes, plant_shortcut
from hkd.data.splits import dataset_splits
from hkd.data.training_images import TrainingImages
from hkd.data.transforms import build_augmentation

SAMPLERS = ("random", "balanced")  # data.sampler


class ChestXrayDataModule(L.LightningDataModule):
    """Any chest X-ray source (``data.format``) as train/val/test loaders of ``ChestXrayDataset``."""

    def __init__(self, cfg: DictConfig, roi_mode: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.data = cfg.data
        self.roi_mode = roi_mode
        self.splits_without_roi: set[str] = set()  # datasets that no longer build ROI images
        self.records: list[Record] = []
        self.classes: list[str] = []
        self.splits: list[str] = []
        self.datasets: dict[str, ChestXrayDataset] = {}
        self.train_positions: list[int] | None = None  # a view's training samples (restricted_to)

    def restricted_to(self, positions: list[int]) -> ChestXrayDataModule:
        """A view of this DataModule whose training loader reads only these training positions
        (e.g. PneuKnowNet's ROI-fraction subset); the datasets are shared, this one is unchanged."""
        view = copy.copy(self)
        view.train_positions = list(positions)
        return view

    def describe(self) -> None:
        """Read the records, classes and splits (no decoding); idempotent."""
        if not self.records:
            self._records_and_splits()

    def label_indices(self) -> np.ndarray:
        """Every record's class index."""
        return np.array([self.classes.index(r.label) for r in self.records])

    def train_class_counts(self) -> list[int]:
        self.describe()
        labels = self.label_indices()[np.array(self.splits) == "train"]
        return np.bincount(labels, minlength=len(self.classes)).tolist()

    def split_summary(self) -> dict[str, dict]:
        """Per split: images, distinct patients and images per class (for the run's record)."""
        self.describe()
        summary = {}
        for split in ("train", "val", "test"):
            chosen = [r for r, s in zip(self.records, self.splits) if s == split]
            summary[split] = {"images": len(chosen), "patients": len({r.patient_id for r in chosen}),
                              "classes": {c: sum(r.label == c for r in chosen) for c in self.classes}}
        return summary

    def _records_and_splits(self) -> None:
        self.records, self.classes = load_records(self.data, self.cfg.seed)
        self.splits = dataset_splits(self.records, self.classes, self.data, self.cfg.seed)

    def prepare_data(self) -> None:
        """Generate / validate / decode once (rank 0 of each node)."""
        self._records_and_splits()
        self._cache_folder()

    def _cache_folder(self) -> Path:
        """The decoded images (built once), with ``data.shortcut``'s markers planted when it is on."""
        folder = build_cache(self.records, self.data.image_size, self.data.channels,
                             self.data.cache_dir, self.data.num_workers)
        self.decoded_folder = folder  # the images as decoded, without planted markers
        spec = ShortcutSpec.from_config(self.data.get("shortcut"), len(self.classes))
        if spec is None:
            return folder
        codes = marker_codes(self.label_indices(), np.array(self.splits), len(self.classes), spec,
                             self.cfg.seed)
        return plant_shortcut(folder, codes, spec)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.describe()
        cache = open_cache(self._cache_folder())
        labels = self.label_indices()
        splits = np.array(self.splits)
        has_prior = self._used_annotations(np.array([r.has_prior for r in self.records]), splits)
        self.labels, self.has_prior = labels, has_prior
        common = dict(cache=cache, labels=labels, has_prior=has_prior, mean=list(self.data.mean),
                      std=list(self.data.std), roi_fill=self.cfg.hkd.roi_fill,
                      prior_soft_edge=self.data.prior_soft_edge, fill_mean=float(self.data.fill_mean))
        for split in ("train", "val", "test"):
            transform = build_augmentation(self.cfg.augment, self.data.channels) if split == "train" else None
            self.datasets[split] = ChestXrayDataset(indices=np.flatnonzero(splits == split),
                                                transform=transform, roi_mode=self.roi_mode, **common)
        # The same training samples without augmentation, for evaluation passes (IMIL mining).
        self.datasets["train_eval"] = ChestXrayDataset(indices=np.flatnonzero(splits == "train"),
                                                   transform=None, roi_mode=self.roi_mode, **common)
        self.stop_building_roi(self.splits_without_roi)

    def stop_building_roi(self, splits: Iterable[str]) -> None:
        """These datasets' samples no longer carry an ROI image (e.g. once HKD's teacher is trained)."""
        self.splits_without_roi.update(splits)
        for split in self.splits_without_roi & set(self.datasets):
            self.datasets[split].roi_mode = None

    def _used_annotations(self, has_prior: np.ndarray, splits: np.ndarray) -> np.ndarray:
        """``hkd.roi_fraction``: keep the annotations of only that (seeded) share of the
        annotated training images; validation and test keep all of theirs."""
        fraction = float(self.cfg.hkd.roi_fraction)
        annotated = np.flatnonzero(has_prior & (splits == "train"))
        if fraction >= 1.0 or len(annotated) == 0:
            return has_prior
        rng = np.random.default_rng(self.cfg.seed + 7)
        keep = rng.choice(annotated, size=int(round(fraction * len(annotated))), replace=False)
        used = has_prior.copy()
        used[np.setdiff1d(annotated, keep)] = False
        return used

    def set_predicted_priors(self, priors: dict[int, np.ndarray],
                             splits: tuple[str, ...] = ("train", "train_eval")) -> None:
        """Priors predicted for images whose annotations are missing or unused (by default for
        the training images only)."""
        for name in splits:
            self.datasets[name].predicted_priors = dict(priors)

    def training_images(self) -> TrainingImages:
        """The training split as IMIL reads and edits it (after ``setup``)."""
        return TrainingImages(train=self.datasets["train"], train_eval=self.datasets["train_eval"],
                              records=self.records, classes=self.classes,
                              image_size=int(self.data.image_size),
                              eval_batch_size=int(self.data.eval_batch_size),
                              keeps_workers=bool(self.data.persistent_workers and self.data.num_workers > 0))

    def _loader(self, dataset: ChestXrayDataset, batch_size: int, shuffle: bool,
                sampler=None) -> DataLoader:
        workers = self.data.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=workers,
                          persistent_workers=bool(self.data.persistent_workers and workers > 0),
                          pin_memory=self.data.pin_memory, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        if self.train_positions is not None:
            return self._loader(Subset(dataset, self.train_positions), self.data.batch_size, shuffle=True)
        sampler = None
        if self.data.sampler == "balanced":
            counts = np.array(self.train_class_counts())
            weights = 1.0 / counts[self.labels[dataset.indices]]
            sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(dataset),
                                            replacement=True)
        return self._loader(dataset, self.data.batch_size, shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"], self.data.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"], self.data.eval_batch_size, shuffle=False)
