"""What one test pass leaves in the run directory: ``test_predictions.csv`` (per image: the
probabilities, the logits, the prediction, the true class's relevance mass and pointing game and
the image's metadata; ``hkd.evaluation.predictions``), bootstrap
95 % confidence intervals of every test metric (``test_ci.json``) and the confusion matrix figure,
all from the per-sample outputs the module collected in ``test_step`` (gathered over ranks): the
test split is run once. Written on rank 0 inside the process that tested (a ``ddp_spawn`` worker
too), so the files exist whatever the strategy."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from hkd.atomic import atomic_write_csv, atomic_write_json
from hkd.data.dicom import image_metadata
from hkd.evaluation.predictions import prediction_rows, predictions_file
from hkd.reporting.figures import save_confusion_matrix
from hkd.reporting.statistics import bootstrap_intervals

INTERVALS_FILE = "test_ci.json"


class EvaluationOutputs(Callback):
    def __init__(self, run_dir: str | Path, seed: int) -> None:
        self.run_dir = Path(run_dir)
        self.seed = seed

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out = pl_module.test_outputs
        if not trainer.is_global_zero or not out:
            return
        datamodule = trainer.datamodule
        labels = datamodule.labels[out["idx"]]
        metadata = [image_metadata(datamodule.records[i]) for i in out["idx"]]
        rows = prediction_rows(out["idx"], datamodule.records, labels, pl_module.classes, out, metadata)
        atomic_write_csv(predictions_file(self.run_dir, "test"), rows)
        regions = {key: out[key] for key in ("relevance_mass", "pointing_game")}
        atomic_write_json(self.run_dir / INTERVALS_FILE,
                          bootstrap_intervals(out["probabilities"], labels, regions, seed=self.seed))
        if pl_module.confusion_matrix is not None:
            save_confusion_matrix(pl_module.confusion_matrix, pl_module.classes,
                                  self.run_dir / "confusion_matrix.png")


def read_intervals(run_dir: Path) -> dict:
    """The intervals the test pass wrote (empty when it wrote none, e.g. an empty test split)."""
    path = Path(run_dir) / INTERVALS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
