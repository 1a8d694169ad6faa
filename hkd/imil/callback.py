"""IMIL (Rao et al. 2024) as a Lightning callback: mine misprediction outliers during training,
ask an oracle for their irrelevant regions, black those out and train on the edited samples.

The callback only schedules; its collaborators do the work: ``Miner`` (the mining pass),
``ReviewRounds`` (the queue oracle's rounds: written, closed, taken), ``Propagator`` (proposals from
the marks), ``ImageBinding`` (edits and marks found again by their image on resume), ``log_round``
and ``IMILState`` (what IMIL has done, checkpointed and written to ``RUN_DIR/imil/edits.json``).
The edits are data: an ``EditTable`` handed to the training datasets (applied on read). Under DDP
every rank mines its shard, the results are gathered and de-duplicated, and every rank applies the
same selection (a pure function); the train loader is rebuilt each epoch so workers see the edits.
The callback reads the training data only through ``TrainingImages``."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from hkd.config.choices import CHANGED_IMAGES, EDIT_MODES, MINE_MODES, one_of
from hkd.data.counterfactual import CounterfactualSettings
from hkd.imil.binding import ImageBinding
from hkd.imil.edits import EditTable
from hkd.imil.mining import Miner
from hkd.imil.oracles import simulated_oracle
from hkd.imil.propagation import Propagation
from hkd.imil.propagator import Propagator
from hkd.imil.review_rounds import ReviewRounds
from hkd.imil.round_log import log_round
from hkd.imil.rounds import Round
from hkd.imil.selection import choose, round_limit, total_budget
from hkd.imil.state import IMILState


class IMILCallback(Callback):
    """IMIL during training, with plain settings (built by ``hkd.run.build.build_imil_callback``):
    ``table`` holds the edits and their fill; ``oracle`` is ``annotations`` (simulated clinician),
    ``queue`` (the review page) or ``none``; ``budget`` is the share of the training set a clinician
    may mark over the run; rounds run after ``start_epoch`` and every ``every_n_epochs``, at most
    ``rounds`` of them; ``propagation`` (or None) proposes regions from the marks so far;
    ``changed_images`` says what a resume does with an edit whose image is gone or changed;
    ``mine`` which training samples a round offers the oracle: ``mispredicted`` (the paper),
    ``flips`` (those whose decision the ``swap`` view changes, beyond the paper) or ``both``."""

    def __init__(self, run_dir: str | Path, table: EditTable, *, oracle: str = "annotations",
                 budget: float = 0.04, start_epoch: int = 2, every_n_epochs: int = 2,
                 rounds: int | None = None, propagation: Propagation | None = None,
                 log_images: bool = True, changed_images: str = "error", mine: str = "mispredicted",
                 swap: CounterfactualSettings | None = None, seed: int = 0, edit: str = "replace") -> None:
        self.run_dir = Path(run_dir)
        self.state = IMILState(table)
        self.oracle, self.budget, self.max_rounds = oracle, float(budget), rounds
        self.start_epoch, self.every_n_epochs = int(start_epoch), max(1, int(every_n_epochs))
        self.propagation, self.log_images = propagation, log_images
        self.changed_images = one_of("changed_images", changed_images, CHANGED_IMAGES)
        self.edit = one_of("edit", edit, EDIT_MODES)
        self.mine_mode, self.swap, self.seed = one_of("mine", mine, MINE_MODES), swap, int(seed)
        self.waiting_for_review = False

    @property
    def state_key(self) -> str:
        return "IMILCallback"

    @property
    def table(self) -> EditTable:
        return self.state.table

    @property
    def pending_round(self) -> int | None:
        return self.state.pending_round

    def state_dict(self) -> dict:
        return self.state.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.state.load_state_dict(state)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images = images = trainer.datamodule.training_images()
        if images.keeps_workers and not trainer.reload_dataloaders_every_n_epochs:
            raise ValueError("IMIL edits would be lost: persistent DataLoader workers keep their "
                             "copy of the dataset; set reload_dataloaders_every_n_epochs=1 or "
                             "data.persistent_workers=false")
        if self.edit == "add" and not trainer.reload_dataloaders_every_n_epochs:
            raise ValueError("imil.edit=add grows the training set after a round: the training loader "
                             "must be rebuilt, set reload_dataloaders_every_n_epochs=1")
        images.use_edits(self.state.table, add=self.edit == "add")
        binding = ImageBinding(images, self.changed_images)
        self.miner = Miner(images, self.mine_mode, self.swap, self.seed)
        self.review = ReviewRounds(self.run_dir, images, self.state, binding)
        self.propagator = Propagator(self.propagation, images, self.state) if self.propagation else None
        binding.rebind(self.state)
        self.review.refuse_marks_after_closing()
        if self.state.pending_round is not None:  # resumed after a review
            self.review.take_confirmations()
            record = self.review.take_review()
            self.propagate_after(trainer, record)
            if record.propagated:
                self.review.write_proposals(trainer, record)
        self.publish(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        due = epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every_n_epochs == 0
        last_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs - 1
        if not due or last_epoch or (self.max_rounds and self.state.mining_rounds() >= self.max_rounds):
            return
        n_train, table = len(self.images), self.state.table
        limit = round_limit(total_budget(self.budget, n_train), table.clinician_count(), self.max_rounds)
        if limit <= 0 and not (self.propagator and self.propagator.can_propagate()):
            return  # nothing to mark, nothing left to propose
        reviewed = self.state.reviewed
        idx, labels, predictions, losses, drops, flipped = self.miner.mine(trainer, pl_module, reviewed)
        chosen = choose(self.mine_mode, idx, labels, predictions, losses, drops, flipped > 0, reviewed, limit)
        record = Round(round=len(self.state.rounds) + 1, epoch=epoch, n_train=n_train, n_mined=len(idx),
                       n_mispredicted=int((predictions != labels).sum()),
                       n_flipped=int((flipped > 0).sum()) if self.mine_mode != "mispredicted" else None,
                       n_selected=len(chosen), selected=chosen,
                       labels=[int(labels[idx == i][0]) for i in chosen],
                       predictions=[int(predictions[idx == i][0]) for i in chosen])
        if self.oracle == "queue" and chosen:
            self.wait_for_review(trainer, pl_module, record)
            return
        oracle = simulated_oracle(self.oracle, self.images, self.seed)
        self.state.record_edits(record, ((i, *oracle.irrelevant_regions(i), "") for i in chosen)
                                if oracle else (), "oracle")
        self.propagate_after(trainer, record)
        self.state.rounds.append(record)
        self.publish(trainer)
        log_round(trainer, pl_module, record, table, self.images, self.log_images)

    def wait_for_review(self, trainer: L.Trainer, pl_module: L.LightningModule, record: Round) -> None:
        """Write the round for review, checkpoint and stop cleanly."""
        self.review.write(trainer, pl_module, record)
        self.waiting_for_review = True
        self.publish(trainer)
        trainer.strategy.barrier()
        trainer.save_checkpoint(self.run_dir / "checkpoints" / "last.ckpt")
        trainer.should_stop = True

    def propagate_after(self, trainer: L.Trainer, record: Round) -> None:
        if self.propagator is not None:
            self.propagator.after(trainer, record)

    def publish(self, trainer: L.Trainer) -> None:
        edits_file = self.run_dir / "imil" / "edits.json"
        self.state.publish(self.images, edits_file if trainer.is_global_zero else None)
