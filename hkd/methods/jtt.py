"""Just Train Twice (Liu et al. 2021, ICML), the annotation-free row to beat: a first model trained
briefly with plain cross-entropy names the training images it gets wrong (the error set; under a
shortcut, mostly the images the shortcut misleads), then the final model trains from scratch with
those images up-weighted. Liu et al. up-sample the error set by ``upweight``; here each error-set
image's cross-entropy is weighted by it (the same expected gradient, without a larger epoch). The
first stage is ``hkd.run.jtt_pipeline``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hkd.methods.base import Method


class JTT(Method):
    """Cross-entropy weighted ``upweight`` on the error set's images and 1 elsewhere, normalised by
    the batch's total weight."""

    name = "jtt"
    mixes_batches = False

    def __init__(self, upweight: float = 6.0) -> None:
        super().__init__()
        self.upweight = float(upweight)
        self.register_buffer("weights", torch.ones(0), persistent=False)

    def use_error_set(self, error_rows: np.ndarray, n_rows: int) -> None:
        """The data set rows (``idx``) the first stage got wrong, of ``n_rows`` rows in all."""
        weights = torch.ones(n_rows)
        weights[torch.as_tensor(np.asarray(error_rows, dtype=np.int64))] = self.upweight
        self.weights = weights.to(self.weights.device)

    def training_loss(self, module, batch: dict) -> dict[str, torch.Tensor]:
        _, logits = module.features_and_logits(batch[self.input_key])
        per_sample = F.cross_entropy(logits, batch["label"], weight=module.class_weights, reduction="none")
        weights = self.weights[batch["idx"].to(self.weights.device)] if len(self.weights) else \
            torch.ones_like(per_sample)
        loss = (weights * per_sample).sum() / weights.sum()
        return {"loss": loss, "ce": per_sample.mean().detach(), "logits": logits,
                "error_set_share": (weights > 1).float().mean()}
