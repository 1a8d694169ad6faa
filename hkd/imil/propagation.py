"""``imil.propagate``: make each clinician mark count. The prior generator learns the irrelevant
regions from the marks so far and proposes them for the other training images; confident
proposals are blacked out too (source ``propagated``, logged apart from the clinician's edits)."""

from __future__ import annotations

from collections.abc import Callable
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


def fit_generator(module: PriorGeneratorModule, loader: DataLoader, max_updates: int,
                  reproduced: Callable[[], bool] | None = None) -> int:
    """At most ``max_updates`` optimiser updates, stopping at the first check (every
    ``CHECK_EVERY``) where ``reproduced()`` holds; the updates made. A plain loop: this runs inside a
    Trainer's callback, where no second Trainer may run."""
    optimizer = module.configure_optimizers()
    updates = 0
    while updates < max_updates:
        for batch in loader:
            module.train()
            loss = module.loss(move(batch, module.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            checked = reproduced is not None and updates % CHECK_EVERY == 0
            if (checked and reproduced()) or updates >= max_updates:
                module.eval()
                return updates
    module.eval()
    return updates


MIN_SIZE = 32  # the generator (a BasicUNet) halves its input four times
CHECK_EVERY = 10  # updates between two checks of whether the generator reproduces the marks
MAX_CHECKED = 64  # marked images a check predicts (the first, by row)


@dataclass(frozen=True)
class Propagation:
    """``imil.propagate``'s settings: the generator (``prior_generator.*``), how it is trained
    each round and which proposals count."""

    seed: int  # with the round number, seeds the generator's training
    channels: int
    features: tuple[int, ...]  # imil.propagate_features
    lr: float  # imil.propagate_lr
    threshold: float  # probability above which a pixel is proposed (prior_generator.threshold)
    max_area: float  # imil.propagate_max_area
    confidence: float  # imil.propagate_confidence
    updates: int = 200  # imil.propagate_updates: at most this many optimiser updates per round
    batch_size: int = 8  # imil.propagate_batch_size
    stop_recall: float | None = 0.99  # imil.propagate_stop_recall (None: every update)
    scale: float = 1.0  # imil.propagate_scale: the generator's share of the image size
    warm_start: bool = False  # imil.propagate_warm_start: continue the previous round's generator

    def accepts(self, mask: np.ndarray, confidence: float) -> bool:
        """Whether a proposed region is black-out-worthy: not empty, small, confident."""
        return 0 < mask.mean() <= self.max_area and confidence >= self.confidence


def generator_size(scale: float, image_size: int) -> int:
    """The generator's image size: ``scale`` of the images', at least ``MIN_SIZE``, at most theirs."""
    return min(image_size, max(MIN_SIZE, round(scale * image_size)))


@dataclass(frozen=True)
class Proposals:
    """A round's propagation: {data set row: region} of the accepted proposals, the generator that
    made them and its optimiser updates this round."""

    regions: dict[int, np.ndarray]
    generator: PriorGeneratorModule
    updates: int


def propose_irrelevant_regions(settings: Propagation, images: TrainingImages, table: EditTable,
                               rejected: set[int], number: int,
                               previous: PriorGeneratorModule | None = None) -> Proposals:
    """Train a generator on the clinician masks in ``table`` (from ``previous``, the last round's,
    when given) until it reproduces them (``reproduces_marks``) or for ``settings.updates``, and
    propose regions for the training images that are neither edited nor ``rejected``: the
    confident, small ones."""
    torch.manual_seed(settings.seed + number)
    module = previous or PriorGeneratorModule(settings.channels, "irrelevant", tuple(settings.features),
                                              settings.lr)
    marks = table.clinician_masks()
    size = generator_size(settings.scale, images.image_size)
    loader = DataLoader(MarkedSamples(images, marks, size), batch_size=min(settings.batch_size, len(marks)),
                        shuffle=True)
    reproduced = None if settings.stop_recall is None else (
        lambda: reproduces_marks(module, settings, images, marks, size))
    updates = fit_generator(module, loader, settings.updates, reproduced)
    masks, confidence = predict_masks(module, images.evaluation_dataset(edited=False),
                                      candidates(images, table, rejected), settings.threshold, size=size)
    accepted = {idx: mask for idx, mask in masks.items() if settings.accepts(mask, confidence[idx])}
    return Proposals(accepted, module, updates)


def reproduces_marks(module: PriorGeneratorModule, settings: Propagation, images: TrainingImages,
                     marks: dict[int, np.ndarray], size: int) -> bool:
    """Whether the generator, shown the (up to ``MAX_CHECKED``) marked images unaugmented, would
    propose every one of them and its regions cover on average ``settings.stop_recall`` of the
    marked pixels. Marks larger than ``max_area`` could never be proposed and are not checked."""
    checked = [idx for idx in sorted(marks) if 0 < marks[idx].mean() <= settings.max_area][:MAX_CHECKED]
    if not checked:
        return False
    position = {int(idx): p for p, idx in enumerate(images.indices)}
    masks, confidence = predict_masks(module, images.evaluation_dataset(edited=False),
                                      [position[idx] for idx in checked], settings.threshold, size=size)
    recall = np.mean([(masks[idx] & marks[idx]).sum() / marks[idx].sum() for idx in checked])
    proposable = all(settings.accepts(masks[idx], confidence[idx]) for idx in checked)
    return bool(proposable and recall >= settings.stop_recall)


def candidates(images: TrainingImages, table: EditTable, rejected: set[int]) -> list[int]:
    """Positions (in ``images.indices``) of the training images a proposal may go to: neither
    edited nor rejected."""
    excluded = set(table) | rejected
    return [p for p, i in enumerate(images.indices) if int(i) not in excluded]
