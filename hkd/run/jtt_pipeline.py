"""JTT's first stage (``method.name=jtt``, ``hkd.methods.jtt``) in ``RUN_DIR/jtt/``: a plain
cross-entropy model trained for ``jtt.epochs`` on forked random streams (so the final model starts
from the same initialisation and data order as the baseline of the same seed), then its errors on
the unaugmented training images, the error set, kept in ``RUN_DIR/jtt/error_set.json`` (a resumed
run reuses it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from hkd.atomic import atomic_write_json
from hkd.data.datamodule import ChestXrayDataModule
from hkd.methods.base import Method
from hkd.methods.jtt import JTT
from hkd.run.build import build_module
from hkd.run.method_runs import MethodRun
from hkd.run.stage import Stage, finish_wandb, fit, resume_path


@torch.no_grad()
def training_errors(module, datamodule: ChestXrayDataModule) -> np.ndarray:
    """The data set rows of the training images ``module`` misclassifies (unaugmented, unedited)."""
    datamodule.setup()
    loader = DataLoader(datamodule.datasets["train_eval"], batch_size=int(datamodule.loaders.eval_batch_size))
    module.eval()
    wrong = []
    for batch in loader:
        predicted = module(batch["image"].to(module.device)).argmax(1).cpu()
        wrong.append(batch["idx"][predicted != batch["label"]])
    return torch.cat(wrong).numpy()


def identify_errors(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                    class_weights: list[float] | None) -> dict:
    """The first stage's record: its epochs, the error set's rows and its share of the training set."""
    folder = run_dir / "jtt"
    record_file = folder / "error_set.json"
    if cfg.resume and record_file.is_file():
        return json.loads(record_file.read_text())
    with torch.random.fork_rng(devices=[]):
        module = build_module(cfg, datamodule.classes, Method(), class_weights)
        stage = Stage(folder, int(cfg.jtt.epochs), cfg.checkpoint.monitor, cfg.checkpoint.mode,
                      job_type="jtt", resume_from=resume_path(cfg, folder))
        fitted = fit(cfg, stage, datamodule, module)
        finish_wandb(fitted.trainer)
        rows = training_errors(module, datamodule)
    n_train = len(datamodule.datasets["train_eval"])
    record = {"epochs": int(cfg.jtt.epochs), "upweight": float(cfg.jtt.upweight), "train_images": n_train,
              "error_set": len(rows), "error_share": len(rows) / max(n_train, 1),
              "error_rows": sorted(map(int, rows))}
    if fitted.trainer.is_global_zero:
        atomic_write_json(record_file, record)
    return record


def build_jtt(cfg: DictConfig, num_classes: int) -> JTT:
    return JTT(upweight=float(cfg.jtt.upweight))


def prepare_jtt(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                class_weights: list[float] | None) -> tuple[JTT, dict]:
    """JTT's first stage, then the final model's method with the error set up-weighted."""
    record = identify_errors(cfg, run_dir, datamodule, class_weights)
    method = build_jtt(cfg, len(datamodule.classes))
    method.use_error_set(np.asarray(record["error_rows"], dtype=np.int64), len(datamodule.records))
    return method, {"jtt": {key: value for key, value in record.items() if key != "error_rows"}}


JTT_RUN = MethodRun(build=build_jtt, prepare=prepare_jtt)
