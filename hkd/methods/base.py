"""A training method: how a batch becomes a loss. The LightningModule delegates to it."""

from __future__ import annotations

import torch
from torch import nn


class Method(nn.Module):
    """Plain cross-entropy on ``batch[input_key]`` (the baseline; also the HKD teacher on ROIs)."""

    name = "baseline"

    def __init__(self, input_key: str = "image") -> None:
        super().__init__()
        self.input_key = input_key

    def training_loss(self, module, batch: dict) -> dict[str, torch.Tensor]:
        """``loss`` to optimise, ``logits`` for metrics, and any other terms to log."""
        _, logits = module.features_and_logits(batch[self.input_key])
        ce = module.cross_entropy(logits, batch["label"], batch.get("soft_label"))
        return {"loss": ce, "ce": ce, "logits": logits}
