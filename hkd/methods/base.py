"""A training method: how a batch becomes a loss. The classifier LightningModule receives a built
method and delegates its training loss to it.

A new method is a ``Method`` subclass that declares what it needs on the class, named in
``hkd.config.choices.METHODS`` (or, outside hkd, registered with ``@METHODS.register("name")``);
``method.name=name`` then trains it. Its constructor
takes plain values: the run's composition root (``hkd.run.build``) passes it the ``method.*`` keys
its signature names (e.g. ``weight``); a method reads no configuration itself."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Method(nn.Module):
    """Plain cross-entropy on ``batch[input_key]``: the baseline, and HKD's teacher on ROI images.

    What a method needs is declared on its class:

    * ``inputs``: the sample keys its loss reads; ``"roi"`` makes the data build ROI images.
    * ``double_backward``: the loss differentiates a gradient (``torch.compile`` refuses these).
    * ``mixes_batches``: MixUp/CutMix may mix its batches (they mix images but not priors).
    """

    name: ClassVar[str] = "baseline"
    inputs: ClassVar[tuple[str, ...]] = ("image",)
    double_backward: ClassVar[bool] = False
    mixes_batches: ClassVar[bool] = True

    def __init__(self, input_key: str = "image") -> None:
        super().__init__()
        self.input_key = input_key

    def before_transfer(self, batch: dict) -> dict:
        """The batch on the host, before it moves to the device: add what the method reads from
        host memory (HKD's cached teacher features)."""
        return batch

    def training_loss(self, module, batch: dict) -> dict[str, torch.Tensor]:
        """``loss`` to optimise, ``logits`` for metrics, and any other terms to log."""
        _, logits = module.features_and_logits(batch[self.input_key])
        ce = module.cross_entropy(logits, batch["label"], batch.get("soft_label"))
        return {"loss": ce, "ce": ce, "logits": logits}


