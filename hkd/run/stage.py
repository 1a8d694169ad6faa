"""One training stage: fit, evaluate the best checkpoint on val and test (the test split once), report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from hkd.config import to_dotlist
from hkd.data.datamodule import ChestXrayDataModule
from hkd.evaluation.predictions import predictions_file
from hkd.evaluation.report import REPORT_FIGURES, REPORT_FOLDER, write_report
from hkd.models.classifier import ClassifierModule
from hkd.models.nonfinite import NonFiniteLossError
from hkd.run.build import report_options
from hkd.run.checkpoints import resume_checkpoint
from hkd.run.evaluation_outputs import read_intervals
from hkd.run.last_epoch import last_epoch_metrics
from hkd.run.media import fixed_test_batch, wandb_loggers, write_cam_overlays
from hkd.run.trainer import build_trainer


@dataclass
class StageResult:
    module: ClassifierModule
    best_checkpoint: str
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    is_global_zero: bool = True
    waiting_for_review: int | None = None  # an IMIL round that waits for a clinician
    test_intervals: dict = field(default_factory=dict)  # bootstrap 95 % CIs of the test metrics
    last_epoch: dict = field(default_factory=dict)  # {"epoch", "val", "test"}: the model training left


def resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """Where a resumed stage continues from (a damaged last.ckpt falls back to a good one)."""
    if not cfg.resume:
        return None
    found = resume_checkpoint(run_dir / "checkpoints")
    return str(found) if found else None


def strip_prefix(metrics: dict, prefix: str) -> dict:
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class Stage:
    """One training stage: where it writes, how long it trains and what selects its checkpoint."""

    run_dir: Path
    epochs: int
    monitor: str = "val/balanced_accuracy"
    mode: str = "max"
    job_type: str = "train"  # the W&B job type (train, teacher)
    resume_from: str | None = None  # a checkpoint to continue from
    callbacks: tuple = ()  # more callbacks for its Trainer
    options: dict = field(default_factory=dict)  # more Trainer arguments (e.g. IMIL's loader reloads)


@dataclass
class Fitted:
    """A stage after ``fit``: its Trainer, and the checkpoint to evaluate (None: the weights as
    they are) or the IMIL round that waits for a clinician."""

    trainer: L.Trainer
    best_checkpoint: str | None = None
    waiting_for_review: int | None = None


def fit(cfg: DictConfig, stage: Stage, datamodule: ChestXrayDataModule, module: ClassifierModule) -> Fitted:
    """Train the stage; a non-finite loss stops it with where to go on from."""
    trainer = build_trainer(cfg, stage.run_dir, stage.epochs, stage.monitor, stage.mode, stage.job_type,
                            list(stage.callbacks), stage.options)
    if not cfg.resume:  # a resumed run continues the same W&B run: its configuration is there
        for logger in trainer.loggers:
            logger.log_hyperparams(to_dotlist(cfg))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=stage.resume_from)
    except NonFiniteLossError as error:
        finish_wandb(trainer)
        good = resume_checkpoint(stage.run_dir / "checkpoints")
        good_text = f"the last good checkpoint is {good}" if good else "there is no good checkpoint yet"
        raise NonFiniteLossError(f"{error}. Training stopped before that step; {good_text}. Lower "
                                 f"optim.lr or set trainer.gradient_clip_val and resume={stage.run_dir}, "
                                 "or skip such batches with training.nonfinite_loss=skip") from None
    pending = [c.pending_round for c in trainer.callbacks if getattr(c, "waiting_for_review", False)]
    if pending:
        finish_wandb(trainer)
        return Fitted(trainer, waiting_for_review=pending[0])
    checkpoint = trainer.checkpoint_callback
    best = None if cfg.trainer.fast_dev_run else (checkpoint.best_model_path or checkpoint.last_model_path)
    return Fitted(trainer, best or None)


def evaluate(fitted: Fitted, datamodule: ChestXrayDataModule, module: ClassifierModule) -> tuple[dict, dict]:
    """Validation and test metrics of the best checkpoint (loaded into ``module``); the one test
    pass also writes ``test_predictions.csv``, the intervals and the confusion matrix
    (``hkd.run.evaluation_outputs``)."""
    trainer = fitted.trainer
    val = trainer.validate(module, datamodule=datamodule, ckpt_path=fitted.best_checkpoint, verbose=False)[0]
    datamodule.setup()
    if not len(datamodule.datasets["test"]):  # the train / valid protocol (data.test_fraction=0)
        return strip_prefix(val, "val/"), {}
    test = trainer.test(module, datamodule=datamodule, ckpt_path=fitted.best_checkpoint, verbose=False)[0]
    return strip_prefix(val, "val/"), strip_prefix(test, "test/")


def report(cfg: DictConfig, stage: Stage, fitted: Fitted, datamodule: ChestXrayDataModule,
           module: ClassifierModule) -> dict:
    """On rank 0: the test pass's intervals, the CAM overlays of the fixed test images and, for the
    deployed model, the clinical report (``hkd.evaluation.report``), the figures to W&B too; the
    intervals."""
    if not fitted.trainer.is_global_zero:
        return {}
    datamodule.setup()  # under ddp_spawn only the worker processes had set it up
    save_explanations(cfg, module, datamodule, stage.run_dir, fitted.trainer)
    if stage.job_type == "train" and predictions_file(stage.run_dir, "test").is_file():
        write_report(stage.run_dir, report_options(cfg), f"{cfg.name}, run {stage.run_dir.name}")
        for logger in wandb_loggers(fitted.trainer, cfg.logging.images):
            for figure in REPORT_FIGURES:
                path = stage.run_dir / REPORT_FOLDER / f"{figure}.png"
                logger.log_image(f"report/{figure}", images=[str(path)])
    return read_intervals(stage.run_dir)


def train_stage(cfg: DictConfig, stage: Stage, datamodule: ChestXrayDataModule,
                module: ClassifierModule) -> StageResult:
    """Fit, evaluate and report one stage."""
    fitted = fit(cfg, stage, datamodule, module)
    if fitted.waiting_for_review is not None:
        return StageResult(module, "", is_global_zero=fitted.trainer.is_global_zero,
                           waiting_for_review=fitted.waiting_for_review)
    last = {}
    if fitted.trainer.is_global_zero and stage.job_type == "train" and fitted.best_checkpoint:
        last = {"epoch": fitted.trainer.current_epoch - 1, **last_epoch_metrics(module, datamodule)}
    val, test = evaluate(fitted, datamodule, module)
    intervals = report(cfg, stage, fitted, datamodule, module)
    finish_wandb(fitted.trainer)
    return StageResult(module, fitted.best_checkpoint or "", val, test, fitted.trainer.is_global_zero,
                       test_intervals=intervals, last_epoch=last)


def finish_wandb(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            logger.experiment.finish()


def save_explanations(cfg: DictConfig, module: ClassifierModule, datamodule: ChestXrayDataModule,
                      run_dir: Path, trainer: L.Trainer) -> None:
    """Final CAM overlays of the fixed test images; both figures to W&B."""
    batch = fixed_test_batch(datamodule, cfg.explain.n_images)
    figures = {"test/confusion_matrix": run_dir / "confusion_matrix.png"}
    if batch is not None:
        figures["explain/cam_overlays_best"] = write_cam_overlays(module, batch, run_dir / "cam_overlays.png")
    for logger in wandb_loggers(trainer, cfg.logging.images):
        for key, path in figures.items():
            if path.is_file():
                logger.log_image(key, images=[str(path)])
