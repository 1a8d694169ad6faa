"""``logging.epoch_lines``: one plain line per epoch on stdout, for logs and ``hkd cv``'s stream
(progress bars redraw one line, which a log file or a pipe cannot follow)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn

SHOWN = ("train/loss", "val/loss", "val/balanced_accuracy")


class EpochLines(Callback):
    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != TrainerFn.FITTING:
            return
        metrics = trainer.callback_metrics
        values = ", ".join(f"{key} {float(metrics[key]):.4f}" for key in SHOWN if key in metrics)
        print(f"{self.stage} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {values}", flush=True)
