"""The two HKD stages in one run directory: ``RUN_DIR/teacher/`` (stage 1) and the student."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hkd.checkpoints import resume_checkpoint
from hkd.data.datamodule import PneumoniaDataModule
from hkd.models.lit_module import ClassifierModule
from hkd.records_io import write_summary
from hkd.train import StageResult, fit_and_evaluate, imil_callbacks, resume_path, train_class_weights

TEACHER_NOTE = ("the teacher classifies ROI images built from expert annotations: its figures "
                "need annotations at test time and are an upper reference, not a deployable model")


def train_teacher(cfg: DictConfig, run_dir: Path, datamodule: PneumoniaDataModule,
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
    teacher = ClassifierModule(OmegaConf.to_container(cfg), datamodule.classes, class_weights,
                               input_key="roi")
    last = resume_checkpoint(teacher_dir / "checkpoints") if cfg.resume else None  # killed in stage 1
    result = fit_and_evaluate(cfg, teacher_dir, datamodule, teacher,
                              cfg.hkd.teacher_epochs or cfg.trainer.max_epochs, "val/loss", "min",
                              job_type="teacher", ckpt_path=str(last) if last else None)
    test = dict(result.test)
    summary = {"val": result.val, "test_on_roi": test, "best_checkpoint": result.best_checkpoint,
               "note": TEACHER_NOTE}
    if result.is_global_zero:
        write_summary(summary_path, summary)
    return summary


def run_hkd(cfg: DictConfig, run_dir: Path) -> tuple[StageResult, dict]:
    datamodule = PneumoniaDataModule(cfg, roi_mode=cfg.hkd.roi_mode)
    datamodule.describe()
    class_weights = train_class_weights(cfg, datamodule)
    extra: dict = {}
    if cfg.hkd.prior == "predicted":
        from hkd.prior_pipeline import fill_missing_priors

        extra["prior_generator"] = fill_missing_priors(cfg, run_dir, datamodule)
    teacher = train_teacher(cfg, run_dir, datamodule, class_weights)
    student = ClassifierModule(OmegaConf.to_container(cfg), datamodule.classes, class_weights)
    if teacher["best_checkpoint"]:
        student.method.load_teacher(teacher["best_checkpoint"])
    result = fit_and_evaluate(cfg, run_dir, datamodule, student, cfg.trainer.max_epochs,
                              cfg.checkpoint.monitor, cfg.checkpoint.mode,
                              ckpt_path=resume_path(cfg, run_dir),
                              callbacks=imil_callbacks(cfg, run_dir))
    return result, {"teacher": teacher, **extra}
