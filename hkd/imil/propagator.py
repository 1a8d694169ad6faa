"""Propagation inside training: rank 0 trains the generator on the marks so far and proposes; every
rank applies the same proposals as edits (source ``propagated``)."""

from __future__ import annotations

import lightning as L
import torch

from hkd.data.training_images import TrainingImages
from hkd.imil.edits import Edit
from hkd.imil.propagation import Propagation, Proposals, candidates, propose_irrelevant_regions
from hkd.imil.rounds import Round
from hkd.imil.state import IMILState


class Propagator:
    """``settings`` (``imil.propagate_*``) for the training images; keeps the last round's generator
    for ``warm_start``."""

    def __init__(self, settings: Propagation, images: TrainingImages, state: IMILState) -> None:
        self.settings, self.images, self.state = settings, images, state
        self.generator = None  # the last round's prior generator (imil.propagate_warm_start)

    def can_propagate(self) -> bool:
        """A clinician marked something and some training image is neither edited nor rejected
        (once every image is, a round would train the generator for nothing)."""
        return (self.state.table.clinician_count() > 0
                and len(candidates(self.images, self.state.table, self.state.rejected)) > 0)

    def proposals(self, trainer: L.Trainer, number: int) -> Proposals:
        """This round's proposals. They seed their own random numbers; the training's go on as if
        none had been drawn."""
        device = trainer.lightning_module.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            previous = self.generator if self.settings.warm_start else None
            proposals = propose_irrelevant_regions(self.settings, self.images, self.state.table,
                                                   self.state.rejected, number, previous)
        self.generator = proposals.generator
        return proposals

    def after(self, trainer: L.Trainer, record: Round) -> None:
        """Propagate after the round's marks, where there is anything to propagate to."""
        if not self.can_propagate():
            return
        proposals = self.proposals(trainer, record.round) if trainer.is_global_zero else None
        regions, record.generator_updates = trainer.strategy.broadcast(
            (proposals.regions, proposals.updates) if proposals else None, src=0)
        for i, mask in regions.items():
            self.state.table[i] = Edit(mask=mask, round=record.round, epoch=record.epoch, source="propagated",
                                       reason="predicted from clinician marks")
        record.propagated = sorted(regions)
