"""The training split as IMIL sees it: one narrow object instead of the DataModule's internals.

IMIL mines the unaugmented training samples, reads their cached images and annotations to show
or mark them, and hands an edit table to the training datasets. Nothing else of the data layer
is its business."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hkd.data.dataset import ChestXrayDataset, ImageEdits
from hkd.data.identity import file_sha256
from hkd.data.image_record import Record


@dataclass
class TrainingImages:
    train: ChestXrayDataset  # augmented, what the training loader reads
    train_eval: ChestXrayDataset  # the same samples unaugmented, for mining and prediction
    records: list[Record]
    names: list[str]  # each row's image file within the data set (``hkd.data.identity``)
    classes: list[str]
    image_size: int
    eval_batch_size: int
    keeps_workers: bool  # persistent DataLoader workers would keep a stale copy of the edits
    hashes: dict[int, str] = field(default_factory=dict, repr=False)  # content hashes read so far
    rows: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # name -> row

    def __len__(self) -> int:
        return len(self.train_eval)

    @property
    def indices(self) -> np.ndarray:
        """The data set rows (``idx``) of the training samples."""
        return self.train_eval.indices

    def use_edits(self, edits: ImageEdits, add: bool = False) -> None:
        """Every training read (augmented or not) applies ``edits`` from now on; with ``add``
        (``imil.edit=add``) the training loader reads each edited image as well as its original."""
        self.train.edits = edits
        self.train.add_edited_copies = add
        self.train_eval.edits = edits

    def evaluation_dataset(self, edited: bool = True) -> ChestXrayDataset:
        """Unaugmented training samples, with or without the edits."""
        return self.train_eval if edited else self.train_eval.without_edits()

    def original(self, idx: int) -> torch.Tensor:
        """The cached image (C, S, S) in [0, 1], without edits."""
        return self.train_eval.original(idx)

    def relevant_mask(self, idx: int) -> np.ndarray:
        """The annotated relevant regions at the cache's size (bool), or the predicted ones
        (``hkd.prior=predicted``, ``data.prior_generator``) where the image has none."""
        predicted = self.train_eval.predicted_priors.get(idx)
        if predicted is not None and not self.records[idx].has_prior:
            return np.asarray(predicted) > 0
        return np.asarray(self.train_eval.cache.relevant[idx]) > 0

    def irrelevant_mask(self, idx: int) -> np.ndarray:
        """The annotated irrelevant regions at the cache's size (bool)."""
        return np.asarray(self.train_eval.cache.irrelevant[idx]) > 0

    def is_annotated(self, idx: int) -> bool:
        """Whether the data marks relevant regions on this image, or they were predicted."""
        return self.records[idx].has_prior or idx in self.train_eval.predicted_priors

    def source_file(self, idx: int) -> Path:
        return self.records[idx].path

    def identity(self, idx: int) -> tuple[str, str]:
        """(name, SHA-256 of the file) of the image in row ``idx``: what an edit is bound to."""
        if idx not in self.hashes:
            self.hashes[idx] = file_sha256(self.records[idx].path)
        return self.names[idx], self.hashes[idx]

    def row_of(self, name: str) -> int | None:
        """The row of the image with this name now, or None when the data set has no such image."""
        if not self.rows:
            self.rows.update((n, row) for row, n in enumerate(self.names))
        return self.rows.get(name)

    def augment(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw of the training augmentation on an image and its mask; the image normalised."""
        image, mask = self.train.augment(image, mask)
        return self.train.normalize(image), mask
