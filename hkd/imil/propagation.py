"""``imil.propagate``: make each clinician mark count. The prior generator learns the irrelevant
regions from the marks so far and proposes them for the other training images; confident
proposals are blacked out too (source ``propagated``, logged apart from the clinician's edits)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hkd.data.training_images import TrainingImages
from hkd.imil.edits import EditTable
from hkd.models.prediction import move
from hkd.models.prior_generator import PriorGeneratorModule, predict_masks


class MarkedSamples(Dataset):
    """Unedited training images with their clinician mask as the ``irrelevant`` target, through
    the training augmentation."""

    def __init__(self, images: TrainingImages, marks: dict[int, np.ndarray]) -> None:
        self.images, self.items = images, sorted(marks.items())

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict:
        idx, mask = self.items[position]
        target = torch.from_numpy(mask.astype(np.float32))[None]
        image, target = self.images.augment(self.images.original(idx), target)
        return {"image": image, "irrelevant": (target > 0.5).float(), "has_irrelevant": True, "label": 0}


def fit_generator(module: PriorGeneratorModule, loader: DataLoader, epochs: int) -> None:
    """A plain loop: this runs inside a Trainer's callback, where no second Trainer may run."""
    optimizer = module.configure_optimizers()
    module.train()
    for _ in range(epochs):
        for batch in loader:
            batch = move(batch, module.device)
            loss = module.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    module.eval()


@dataclass(frozen=True)
class Propagation:
    """``imil.propagate``'s settings: the generator (``prior_generator.*``) and which proposals count."""

    seed: int  # with the round number, seeds the generator's training
    channels: int
    features: tuple[int, ...]
    lr: float
    epochs: int
    threshold: float  # probability above which a pixel is proposed
    max_area: float  # imil.propagate_max_area
    confidence: float  # imil.propagate_confidence


def propose_irrelevant_regions(settings: Propagation, images: TrainingImages, table: EditTable,
                               rejected: set[int], number: int) -> dict[int, np.ndarray]:
    """Train a generator on the clinician masks in ``table`` and propose regions for the training
    images that are neither edited nor ``rejected``: {idx: mask} of the confident, small ones."""
    torch.manual_seed(settings.seed + number)
    module = PriorGeneratorModule(settings.channels, "irrelevant", tuple(settings.features), settings.lr)
    marks = table.clinician_masks()
    loader = DataLoader(MarkedSamples(images, marks), batch_size=min(16, len(marks)), shuffle=True)
    steps = max(settings.epochs, 100 // max(1, len(loader)))  # >= ~100 updates
    fit_generator(module, loader, steps)
    excluded = set(table) | rejected
    positions = [p for p, i in enumerate(images.indices) if int(i) not in excluded]
    masks, confidence = predict_masks(module, images.evaluation_dataset(edited=False), positions,
                                      settings.threshold)
    return {idx: mask for idx, mask in masks.items()
            if 0 < mask.mean() <= settings.max_area and confidence[idx] >= settings.confidence}
