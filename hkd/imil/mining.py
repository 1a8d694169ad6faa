"""A round's mining pass: every training sample still selectable, scored by the model in training."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from hkd.config.choices import MINE_MODES, one_of
from hkd.data.counterfactual import CounterfactualSettings, partners_by_row
from hkd.data.training_images import TrainingImages
from hkd.imil.selection import deduplicate
from hkd.models.backbone import features_and_logits
from hkd.models.frozen import channels_last_copy


class Miner:
    """Scores the training samples a round may offer: ``mode`` ``mispredicted`` (the paper) needs
    the prediction and loss only; ``flips`` and ``both`` also score each sample's ``swap`` view
    (its region over another training image's outside; partners drawn once from ``seed``)."""

    def __init__(self, images: TrainingImages, mode: str = "mispredicted",
                 swap: CounterfactualSettings | None = None, seed: int = 0) -> None:
        self.images, self.mode = images, one_of("mine", mode, MINE_MODES)
        self.swap, self.seed = swap or CounterfactualSettings(), int(seed)
        self.partners: dict[int, int] | None = None  # training rows' swap partners (drawn once)

    @torch.inference_mode()
    def mine(self, trainer: L.Trainer, pl_module: L.LightningModule, reviewed: set[int]):
        """(idx, label, prediction, loss, drop, flipped) of every training sample not in ``reviewed``
        (never shown to the oracle), identical on all ranks. Images come straight from the cache in
        whole batches (no augmentation, no masks: the mining pass is only forward), through an
        eval-mode channels-last copy of the network (the model in training is not touched). ``drop``
        is how much the swap view lowers the true class's probability (NaN without a region, or when
        only mispredictions are mined), ``flipped`` whether it changes the predicted class."""
        dataset = self.images.evaluation_dataset()
        selectable = np.array([i for i in dataset.indices if i not in reviewed], dtype=np.int64)
        if trainer.world_size > 1:  # equal shards (padded with repeats, dropped after the gather)
            per_rank = max(1, -(-len(selectable) // trainer.world_size))
            padded = np.resize(selectable, per_rank * trainer.world_size) if len(selectable) else selectable
            selectable = padded[trainer.global_rank::trainer.world_size]
        net = channels_last_copy(pl_module.net).eval()  # the layout the CPU's convolutions prefer
        dtypes = (torch.long, torch.long, torch.long, torch.float, torch.float, torch.float)
        columns: list[list[torch.Tensor]] = [[] for _ in dtypes]
        size = self.images.eval_batch_size
        precision = trainer.precision_plugin.forward_context  # the run's autocast (bf16 on a GPU), or none
        for start in range(0, len(selectable), size):
            chunk = selectable[start:start + size]
            images = dataset.images_for(chunk).to(pl_module.device)
            labels = torch.from_numpy(dataset.labels[chunk]).to(pl_module.device)
            with precision():
                logits = logits_of(net, images)
                drop, flipped = self.swap_scores(net, dataset, chunk, logits, labels)
            loss = F.cross_entropy(logits, labels, reduction="none")
            idx = torch.from_numpy(chunk).to(pl_module.device)
            for column, value in zip(columns, (idx, labels, logits.argmax(1), loss, drop, flipped)):
                column.append(value)
        empty = [torch.zeros(0, dtype=dtype, device=pl_module.device) for dtype in dtypes]
        local = [torch.cat(c) if c else e for c, e in zip(columns, empty)]
        if trainer.world_size > 1:
            local = [pl_module.all_gather(c).reshape(-1) for c in local]
        return deduplicate(*(c.cpu().numpy() for c in local))

    def swap_scores(self, net: torch.nn.Module, dataset, chunk: np.ndarray, logits: torch.Tensor,
                    labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """How much each sample's swap view lowers its true class's probability and whether it
        flips the prediction (1.0 or 0.0)."""
        missing = torch.full((len(chunk),), float("nan"), device=logits.device)
        if self.mode == "mispredicted":
            return missing, torch.zeros(len(chunk), device=logits.device)
        if self.partners is None:
            self.partners = partners_by_row(self.images.indices, dataset.labels, self.seed)
        views, swapped = dataset.swapped_images_for(chunk, self.partners, self.swap)
        swap_logits = logits_of(net, views.to(logits.device))
        true = labels[:, None]
        drop = logits.softmax(1).gather(1, true)[:, 0] - swap_logits.softmax(1).gather(1, true)[:, 0]
        has = torch.from_numpy(swapped).to(logits.device)
        return torch.where(has, drop, missing), (has & (swap_logits.argmax(1) != logits.argmax(1))).float()


def logits_of(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return features_and_logits(net, images.contiguous(memory_format=torch.channels_last))[1].float()
