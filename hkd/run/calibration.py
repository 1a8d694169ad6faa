"""Before the test pass of a run's model: its logits on the validation split (``val_predictions.csv``,
which the report's operating points and temperature come from) and, with
``calibration.temperature=true``, temperature scaling fitted on them and applied from the test
pass on (``calibration.json`` beside the checkpoint; ``load_model`` applies it, so ``hkd
predict``, ``hkd test`` and ``hkd export`` do too).

Every rank computes the whole validation split and fits the same temperature (the split is small,
the fit deterministic), so DDP and ``ddp_spawn`` test with the same calibrated model."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from hkd.atomic import atomic_write_csv, atomic_write_json
from hkd.data.dicom import image_metadata
from hkd.evaluation.predictions import prediction_rows, predictions_file
from hkd.evaluation.temperature import fit_temperature, nll, softmax
from hkd.models.prediction import move

CALIBRATION_FILE = "calibration.json"


@torch.no_grad()
def split_logits(module: L.LightningModule, loader) -> tuple[np.ndarray, np.ndarray]:
    """``idx`` and the raw logits (before any temperature) of every image of the loader."""
    was_training = module.training
    module.eval()
    idx, logits = [], []
    for batch in loader:
        batch = move(batch, module.device)
        idx.append(batch["idx"].cpu().numpy())
        logits.append(module.features_and_logits(batch[module.input_key])[1].float().cpu().numpy())
    module.train(was_training)
    return np.concatenate(idx), np.concatenate(logits)


class Calibration(Callback):
    def __init__(self, run_dir: str | Path, fit: bool) -> None:
        self.run_dir, self.fit = Path(run_dir), fit

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        idx, logits = split_logits(pl_module, datamodule.val_dataloader())
        if not len(idx):
            return
        labels = datamodule.labels[idx]
        temperature = fit_temperature(logits, labels) if self.fit else 1.0
        pl_module.temperature.fill_(temperature)
        if not trainer.is_global_zero:
            return
        outputs = {"logits": logits, "probabilities": softmax(logits, temperature)}
        metadata = [image_metadata(datamodule.records[i]) for i in idx]
        rows = prediction_rows(idx, datamodule.records, labels, pl_module.classes, outputs, metadata)
        atomic_write_csv(predictions_file(self.run_dir, "val"), rows)
        if self.fit:
            atomic_write_json(self.run_dir / CALIBRATION_FILE, {
                "temperature": temperature, "fitted_on": "val", "images": int(len(idx)),
                "val_nll_before": nll(logits, labels), "val_nll_after": nll(logits, labels, temperature)})


def saved_temperature(run_dir: str | Path) -> float:
    """The run's fitted temperature (1.0 when it was not calibrated)."""
    path = Path(run_dir) / CALIBRATION_FILE
    return float(json.loads(path.read_text())["temperature"]) if path.is_file() else 1.0
