"""Validation through each image's counterfactual views (``hkd.data.counterfactual``): balanced
accuracy under the swap and the roi view, the share of predictions the swap changes, and the
selection score ``val/cf_score``."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassRecall


class CounterfactualScores(nn.Module):
    """The views' metrics of one validation epoch (a submodule, so they follow the model's device)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.swap_balanced = MulticlassRecall(num_classes, average="macro")
        self.roi_balanced = MulticlassRecall(num_classes, average="macro")
        self.flip_rate = MeanMetric()
        self.seen = False  # this validation epoch had views to score

    def update(self, module: L.LightningModule, batch: dict, logits: torch.Tensor) -> None:
        """The images with a region, seen through their swap and roi views (one pass for both)."""
        region = batch["has_region"].bool()
        if not region.any():
            return
        views = torch.cat([batch["cf_swap"][region], batch["cf_roi"][region]])
        swap_logits, roi_logits = module(views).chunk(2)
        labels = batch["label"][region]
        self.swap_balanced.update(swap_logits, labels)
        self.roi_balanced.update(roi_logits, labels)
        self.flip_rate.update((swap_logits.argmax(1) != logits[region].argmax(1)).float())
        self.seen = True

    def log_epoch(self, module: L.LightningModule, clean_balanced: torch.Tensor) -> None:
        """``val/cf/*``, ``val/roi/balanced_accuracy`` and ``val/cf_score``, the worse of the clean
        and the swapped balanced accuracy; nothing when no image on any rank had a region."""
        seen = torch.tensor(float(self.seen), device=clean_balanced.device)
        if float(module.trainer.strategy.reduce(seen, reduce_op="sum")) == 0:  # every rank decides alike
            return
        swap = self.swap_balanced.compute()
        module.log_dict({"val/cf/balanced_accuracy": swap, "val/cf/flip_rate": self.flip_rate.compute(),
                         "val/roi/balanced_accuracy": self.roi_balanced.compute(),
                         "val/cf_score": torch.minimum(clean_balanced, swap)})
        for metric in (self.swap_balanced, self.roi_balanced, self.flip_rate):
            metric.reset()
        self.seen = False
