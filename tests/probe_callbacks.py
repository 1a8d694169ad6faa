"""A user's own callback, loaded by import path from the configuration (``callbacks.extra``)."""

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
