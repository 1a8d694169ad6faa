"""The LightningDataModule: records and splits -> decoded cache -> datasets -> loaders (the records,
splits and settings come built: ``hkd.run.build.build_datamodule`` makes them from the configuration)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Subset, WeightedRandomSampler

from hkd.data.cache import build_cache, open_cache
from hkd.data.counterfactual import CounterfactualSettings, CounterfactualViews, partners_by_row, scored_rows
from hkd.data.dataset import ChestXrayDataset
from hkd.data.identity import fingerprint, image_names
from hkd.data.image_record import Record
from hkd.data.shortcut import ShortcutSpec, marker_codes, plant_shortcut
from hkd.data.training_images import TrainingImages

DATASETS = ("train", "val", "test", "train_eval")  # train_eval: the training split, unaugmented

@dataclass(frozen=True)
class SampleSettings:
    """How a sample is made from the decoded cache (see ``ChestXrayDataset``)."""

    mean: tuple[float, ...] = (0.5,)  # per-channel normalisation
    std: tuple[float, ...] = (0.25,)
    roi_mode: str | None = None  # blackout | soft: build ROI images (HKD's teacher); None: none
    roi_fill: str = "zero"  # what replaces the pixels outside the prior in blackout ROI images
    fill_mean: float = 0.5  # the ``mean`` fill's value
    prior_soft_edge: float = 0.0  # Gaussian sigma softening the prior's edge


@dataclass(frozen=True)
class LoaderSettings:
    batch_size: int = 32
    eval_batch_size: int = 128
    num_workers: int = 0
    persistent_workers: bool = False
    pin_memory: bool = False
    sampler: str = "random"  # random | balanced (SAMPLERS)


def annotation_share(annotated: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The seeded ``fraction`` of these annotated image indices whose annotations are used."""
    rng = np.random.default_rng(seed + 7)
    return rng.choice(annotated, size=int(round(fraction * len(annotated))), replace=False)


class ChestXrayDataModule(L.LightningDataModule):
    """Labelled images (``records`` with their ``classes`` and ``splits``) as train/val/test loaders
    of ``ChestXrayDataset``: decoded once at ``image_size`` into a cache under ``cache_dir``, with
    ``shortcut``'s markers planted when given, ``augmentation`` on the training split, and the
    annotations of only a seeded ``roi_fraction`` of the annotated training images used; with
    ``counterfactual``, validation samples also carry their counterfactual views."""

    def __init__(self, records: list[Record], classes: list[str], splits: list[str], *,
                 image_size: int, channels: int = 1, cache_dir: str | Path = ".cache/hkd",
                 samples: SampleSettings = SampleSettings(), loaders: LoaderSettings = LoaderSettings(),
                 augmentation: Callable | None = None, shortcut: ShortcutSpec | None = None,
                 seed: int = 0, roi_fraction: float = 1.0,
                 counterfactual: CounterfactualSettings | None = None,
                 roi_splits: Collection[str] | None = None) -> None:
        super().__init__()
        self.records, self.classes, self.splits = records, list(classes), list(splits)
        self.names = image_names(records)  # each image's file within the data set (its identity)
        self.image_size, self.channels, self.cache_dir = int(image_size), int(channels), cache_dir
        self.samples, self.loaders = samples, loaders
        self.augmentation, self.shortcut = augmentation, shortcut
        self.seed, self.roi_fraction = int(seed), float(roi_fraction)
        self.counterfactual = counterfactual
        self.roi_mode = samples.roi_mode
        # the datasets whose samples carry an ROI image (with a roi_mode; None: all of them)
        self.roi_splits = frozenset(roi_splits if roi_splits is not None else DATASETS)
        self.datasets: dict[str, ChestXrayDataset] = {}
        self.train_positions: list[int] | None = None  # a view's training samples (restricted_to)

    def restricted_to(self, positions: list[int]) -> ChestXrayDataModule:
        """A view of this DataModule whose training loader reads only these training positions
        (e.g. PneuKnowNet's ROI-fraction subset); the datasets are shared, this one is unchanged."""
        view = copy.copy(self)
        view.train_positions = list(positions)
        return view

    def with_roi(self, splits: Collection[str]) -> ChestXrayDataModule:
        """A view of this DataModule whose ``splits`` carry ROI images and the others none (e.g. HKD's
        teacher, trained and evaluated on ROI images); its datasets are copies sharing the cache,
        the annotations and predicted priors; this one is unchanged."""
        self.setup()
        view = copy.copy(self)
        view.roi_splits = frozenset(splits)
        view.datasets = {name: copy.copy(dataset) for name, dataset in self.datasets.items()}
        for name, dataset in view.datasets.items():
            dataset.roi_mode = self.roi_mode if name in view.roi_splits else None
        return view

    def add_counterfactual_views(self, split: str, settings: CounterfactualSettings,
                                 control: bool = False) -> None:
        """This split's samples carry their counterfactual views from now on (``setup`` does it for
        the validation split; ``hkd audit``, with the same-class ``control``, for the split it
        audits). Partners come from the seed."""
        self.setup()
        rows = self.datasets[split].indices
        scored = scored_rows(rows, self.labels, settings.fraction, self.seed)
        partners = {row: partner for row, partner in partners_by_row(rows, self.labels, self.seed).items()
                    if row in scored}
        same_class = partners_by_row(rows, self.labels, self.seed, same_class=True) if control else None
        self.datasets[split].counterfactual = CounterfactualViews(settings, partners, same_class)

    def counterfactual_coverage(self) -> dict | None:
        """How many validation images have the relevant region the counterfactual views need (after
        ``setup`` and any predicted priors), naming the first ones without, and how many of those
        are scored (``counterfactual.fraction``, and a partner of another class); None when off."""
        if self.counterfactual is None:
            return None
        self.setup()
        val = self.datasets["val"]
        without = [self.names[i] for i in val.indices if not val.has_region(int(i))]
        scored = sum(val.has_region(row) for row in val.counterfactual.partners)
        return {"val_images": len(val.indices), "with_region": len(val.indices) - len(without),
                "without_region": len(without), "without_region_first": without[:10], "scored": scored}

    def fingerprint(self) -> dict:
        """Every row's image name, class and split (what a resume compares against)."""
        return fingerprint(self.names, self.records, self.splits, self.classes)

    def label_indices(self) -> np.ndarray:
        """Every record's class index."""
        return np.array([self.classes.index(r.label) for r in self.records])

    def train_class_counts(self) -> list[int]:
        labels = self.label_indices()[np.array(self.splits) == "train"]
        return np.bincount(labels, minlength=len(self.classes)).tolist()

    def split_summary(self) -> dict[str, dict]:
        """Per split: images, distinct patients and images per class (for the run's record)."""
        summary = {}
        for split in ("train", "val", "test"):
            chosen = [r for r, s in zip(self.records, self.splits) if s == split]
            summary[split] = {"images": len(chosen), "patients": len({r.patient_id for r in chosen}),
                              "classes": {c: sum(r.label == c for r in chosen) for c in self.classes}}
        return summary

    def prepare_data(self) -> None:
        """Decode once (rank 0 of each node)."""
        self._cache_folder()

    def _cache_folder(self) -> Path:
        """The decoded images (built once), with the shortcut's markers planted when there is one."""
        folder = build_cache(self.records, self.image_size, self.channels, self.cache_dir,
                             self.loaders.num_workers)
        self.decoded_folder = folder  # the images as decoded, without planted markers
        if self.shortcut is None:
            return folder
        codes = marker_codes(self.label_indices(), np.array(self.splits), len(self.classes),
                             self.shortcut, self.seed)
        return plant_shortcut(folder, codes, self.shortcut)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        cache = open_cache(self._cache_folder())
        labels = self.label_indices()
        splits = np.array(self.splits)
        has_prior = self._used_annotations(np.array([r.has_prior for r in self.records]), splits)
        self.labels, self.has_prior = labels, has_prior
        sample = self.samples
        common = dict(cache=cache, labels=labels, has_prior=has_prior, mean=list(sample.mean),
                      std=list(sample.std), roi_fill=sample.roi_fill,
                      prior_soft_edge=sample.prior_soft_edge, fill_mean=float(sample.fill_mean))
        # train_eval: the training samples without augmentation, for evaluation passes (IMIL mining)
        for name in DATASETS:
            rows = np.flatnonzero(splits == ("train" if name == "train_eval" else name))
            self.datasets[name] = ChestXrayDataset(
                indices=rows, transform=self.augmentation if name == "train" else None,
                roi_mode=self.roi_mode if name in self.roi_splits else None, **common)
        if self.counterfactual is not None:
            self.add_counterfactual_views("val", self.counterfactual)

    def _used_annotations(self, has_prior: np.ndarray, splits: np.ndarray) -> np.ndarray:
        """``hkd.roi_fraction``: keep the annotations of only that (seeded) share of the
        annotated training images; validation and test keep all of theirs."""
        annotated = np.flatnonzero(has_prior & (splits == "train"))
        if self.roi_fraction >= 1.0 or len(annotated) == 0:
            return has_prior
        used = has_prior.copy()
        used[np.setdiff1d(annotated, annotation_share(annotated, self.roi_fraction, self.seed))] = False
        return used

    def annotated_training_positions(self, fraction: float = 1.0) -> list[int]:
        """Positions in the training split of the annotated images, or of the seeded ``fraction``
        of them that ``hkd.roi_fraction`` keeps (after ``setup``)."""
        self.setup()
        train = self.datasets["train"].indices
        annotated = train[self.has_prior[train]]
        kept = set((annotation_share(annotated, fraction, self.seed) if fraction < 1 else annotated).tolist())
        return [position for position, idx in enumerate(train) if idx in kept]

    def set_predicted_priors(self, priors: dict[int, np.ndarray],
                             splits: tuple[str, ...] = ("train", "train_eval")) -> None:
        """Priors predicted for images whose annotations are missing or unused (by default for
        the training images only)."""
        for name in splits:
            self.datasets[name].predicted_priors = dict(priors)

    def training_images(self) -> TrainingImages:
        """The training split as IMIL reads and edits it (after ``setup``)."""
        return TrainingImages(train=self.datasets["train"], train_eval=self.datasets["train_eval"],
                              records=self.records, names=self.names, classes=self.classes,
                              image_size=self.image_size,
                              eval_batch_size=int(self.loaders.eval_batch_size),
                              keeps_workers=self.loaders.persistent_workers and self.loaders.num_workers > 0)

    def _loader(self, dataset: ChestXrayDataset, batch_size: int, shuffle: bool,
                sampler=None) -> DataLoader:
        workers = self.loaders.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                          sampler=sampler, num_workers=workers,
                          persistent_workers=bool(self.loaders.persistent_workers and workers > 0),
                          pin_memory=self.loaders.pin_memory, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        dataset = self.datasets["train"]
        dataset.take_edited_copies()
        if self.train_positions is not None:
            return self._loader(Subset(dataset, self.train_positions), self.loaders.batch_size, shuffle=True)
        sampler = None
        if self.loaders.sampler == "balanced":
            counts = np.array(self.train_class_counts())
            weights = 1.0 / counts[dataset.labels_by_position()]
            sampler = WeightedRandomSampler(weights.tolist(), num_samples=len(dataset),
                                            replacement=True)
        return self._loader(dataset, self.loaders.batch_size, shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["val"], self.loaders.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.datasets["test"], self.loaders.eval_batch_size, shuffle=False)
