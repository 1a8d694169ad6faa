"""The test pass's per-sample outputs, collected step by step and gathered over ranks once."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch


class PerSampleOutputs:
    """``idx``, ``probabilities``, raw ``logits``, ``relevance_mass`` and ``pointing_game`` (NaN
    without regions) of every test sample."""

    def __init__(self) -> None:
        self.parts: list[dict[str, torch.Tensor]] = []

    def add(self, **part: torch.Tensor) -> None:
        self.parts.append(part)

    def gathered(self, module: L.LightningModule) -> dict[str, np.ndarray]:
        """Every rank's outputs, each sample once, by ``idx`` (a distributed sampler repeats
        samples to give every rank as many)."""
        if not self.parts:
            return {}
        local = {key: torch.cat([part[key] for part in self.parts]).detach() for key in self.parts[0]}
        if module.trainer.world_size > 1:
            local = {key: value.flatten(0, 1) for key, value in module.all_gather(local).items()}
        _, first = np.unique(local["idx"].cpu().numpy(), return_index=True)
        return {key: value.cpu().numpy()[first] for key, value in local.items()}
