"""``imil.propagate``: make each clinician mark count. The prior generator learns the irrelevant
regions from the marks so far and proposes them for the other training images; confident
proposals are blacked out too (source ``propagated``, logged apart from the clinician's edits)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from hkd.data.training_images import TrainingImages
from hkd.imil.edits import EditTable
from hkd.models.prediction import move
from hkd.models.prior_generator import PriorGeneratorModule, predict_masks


class MarkedSamples(Dataset):
    """Unedited training images with their clinician mask as the ``irrelevant`` target, through
    the training augmentation, at ``size`` pixels (the generator's)."""

    def __init__(self, images: TrainingImages, marks: dict[int, np.ndarray], size: int) -> None:
        self.images, self.items, self.size = images, sorted(marks.items()), size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict:
        idx, mask = self.items[position]
        target = torch.from_numpy(mask.astype(np.float32))[None]
        image, target = self.images.augment(self.images.original(idx), target)
        if self.size != image.shape[-1]:
            image = F.interpolate(image[None], size=self.size, mode="area")[0]
            target = F.interpolate(target[None], size=self.size, mode="area")[0]
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


MIN_SIZE = 32  # the generator (a BasicUNet) halves its input four times


@dataclass(frozen=True)
class Propagation:
    """``imil.propagate``'s settings: the generator (``prior_generator.*``), how it is trained
    each round and which proposals count."""

    seed: int  # with the round number, seeds the generator's training
    channels: int
    features: tuple[int, ...]
    lr: float
    epochs: int
    threshold: float  # probability above which a pixel is proposed
    max_area: float  # imil.propagate_max_area
    confidence: float  # imil.propagate_confidence
    updates: int = 100  # imil.propagate_updates: at least this many optimiser updates per round
    scale: float = 1.0  # imil.propagate_scale: the generator's share of the image size
    warm_start: bool = False  # imil.propagate_warm_start: continue the previous round's generator


def generator_size(scale: float, image_size: int) -> int:
    """The generator's image size: ``scale`` of the images', at least ``MIN_SIZE``, at most theirs."""
    return min(image_size, max(MIN_SIZE, round(scale * image_size)))


def propose_irrelevant_regions(settings: Propagation, images: TrainingImages, table: EditTable,
                               rejected: set[int], number: int,
                               previous: PriorGeneratorModule | None = None
                               ) -> tuple[dict[int, np.ndarray], PriorGeneratorModule]:
    """Train a generator on the clinician masks in ``table`` (from ``previous``, the last round's,
    when given) and propose regions for the training images that are neither edited nor
    ``rejected``: ({idx: mask} of the confident, small ones, the generator)."""
    torch.manual_seed(settings.seed + number)
    module = previous or PriorGeneratorModule(settings.channels, "irrelevant", tuple(settings.features),
                                              settings.lr)
    marks = table.clinician_masks()
    size = generator_size(settings.scale, images.image_size)
    loader = DataLoader(MarkedSamples(images, marks, size), batch_size=min(16, len(marks)), shuffle=True)
    fit_generator(module, loader, max(settings.epochs, settings.updates // max(1, len(loader))))
    positions = candidates(images, table, rejected)
    masks, confidence = predict_masks(module, images.evaluation_dataset(edited=False), positions,
                                      settings.threshold, size=size)
    proposals = {idx: mask for idx, mask in masks.items()
                 if 0 < mask.mean() <= settings.max_area and confidence[idx] >= settings.confidence}
    return proposals, module


def candidates(images: TrainingImages, table: EditTable, rejected: set[int]) -> list[int]:
    """Positions (in ``images.indices``) of the training images a proposal may go to: neither
    edited nor rejected."""
    excluded = set(table) | rejected
    return [p for p, i in enumerate(images.indices) if int(i) not in excluded]
