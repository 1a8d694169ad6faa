"""HKD's stage 1 in ``RUN_DIR/teacher/``: a classifier trained on ROI images, kept at its lowest
validation loss; the student (``hkd.methods.hkd``) distils from its frozen features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from hkd.data.datamodule import ChestXrayDataModule
from hkd.methods import Method
from hkd.run.build import build_module
from hkd.run.checkpoints import resume_checkpoint
from hkd.run.run_dir import write_summary
from hkd.run.stage import fit_and_evaluate

TEACHER_NOTE = ("the teacher classifies ROI images built from expert annotations: its figures "
                "need annotations at test time and are an upper reference, not a deployable model")


def train_teacher(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                  class_weights: list[float] | None) -> dict:
    """Stage 1, or what an earlier (resumed) run or ``hkd.teacher_checkpoint`` already has."""
    if cfg.hkd.teacher_checkpoint:
        path = Path(cfg.hkd.teacher_checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"hkd.teacher_checkpoint={path}: no such checkpoint")
        return {"best_checkpoint": str(path), "reused": True}
    teacher_dir = run_dir / "teacher"
    summary_path = teacher_dir / "summary.json"
    if cfg.resume and summary_path.is_file():
        return json.loads(summary_path.read_text())
    teacher = build_module(cfg, datamodule.classes, Method(input_key="roi"), class_weights)
    last = resume_checkpoint(teacher_dir / "checkpoints") if cfg.resume else None  # killed in stage 1
    epochs = cfg.hkd.teacher_epochs or cfg.trainer.max_epochs
    subset = cfg.hkd.roi_fraction_mode == "subset" and cfg.hkd.roi_fraction < 1.0
    train_images = None  # all of them
    if subset:  # PneuKnowNet's ablation: the sampled images only, for proportionally more epochs
        datamodule.setup()
        train = datamodule.datasets["train"]
        datamodule.train_positions = np.flatnonzero(datamodule.has_prior[train.indices]).tolist()
        train_images = len(datamodule.train_positions)
        epochs = max(1, round(epochs / cfg.hkd.roi_fraction))
    try:
        result = fit_and_evaluate(cfg, teacher_dir, datamodule, teacher, epochs, "val/loss", "min",
                                  job_type="teacher", ckpt_path=str(last) if last else None)
    finally:
        datamodule.train_positions = None
    summary = {"epochs": epochs, "train_images": train_images, "val": result.val,
               "test_on_roi": dict(result.test), "best_checkpoint": result.best_checkpoint,
               "note": TEACHER_NOTE}
    if result.is_global_zero:
        write_summary(summary_path, summary)
    return summary
