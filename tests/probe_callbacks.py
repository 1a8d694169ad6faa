"""Callbacks that probe training from inside: a user's own callback loaded by import path
(``callbacks.extra``), and a poisoned batch for the non-finite guarantee."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback


class RecordNormLayers(Callback):
    """Writes, per rank, the class names of the model's normalisation layers when training starts."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_start(self, trainer, pl_module) -> None:
        names = sorted({type(m).__name__ for m in pl_module.net.modules() if "Norm" in type(m).__name__})
        (self.folder / f"norms-rank{trainer.global_rank}.json").write_text(json.dumps(names))


def _snapshot(pl_module, optimizer) -> list:
    weights = [p.detach().clone() for p in pl_module.parameters() if p.requires_grad]
    moments = [v.detach().clone() for state in optimizer.state.values() for v in state.values()
               if hasattr(v, "detach")]
    return weights + moments


class PoisonOneBatch(Callback):
    """Makes one image of training batch ``batch_idx`` (epoch 0) NaN on rank ``rank`` and writes,
    per rank, whether that step changed the weights and optimizer state, and whether the step
    before it did."""

    def __init__(self, folder: str, batch_idx: int = 1, rank: int = 0) -> None:
        self.folder, self.batch_idx, self.rank = Path(folder), batch_idx, rank
        self.snapshots: dict[int, list] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch != 0 or batch_idx > self.batch_idx + 1:
            return
        self.snapshots[batch_idx] = _snapshot(pl_module, trainer.optimizers[0])
        if batch_idx == self.batch_idx and trainer.global_rank == self.rank:
            batch["image"][0] = float("nan")
        if batch_idx == self.batch_idx + 1:
            before, poisoned, after = (self.snapshots[self.batch_idx + k] for k in (-1, 0, 1))
            (self.folder / f"poison-rank{trainer.global_rank}.json").write_text(json.dumps({
                "good_step_changed": any(not a.equal(b) for a, b in zip(before, poisoned)),
                "bad_step_changed": any(not a.equal(b) for a, b in zip(poisoned, after)),
                "finite": all(bool(a.isfinite().all()) for a in after),
                "weights": [float(a.double().sum()) for a in after]}))


class RecordBatchKeys(Callback):
    """The keys the student's training and validation batches carried (after their transfer)."""

    def __init__(self) -> None:
        self.train: set[str] = set()
        self.val: set[str] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train.update(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.val.update(batch)
