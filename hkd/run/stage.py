"""One training stage: fit, then evaluate the best checkpoint on val and test, with its figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from hkd.config import to_dotlist
from hkd.data.datamodule import ChestXrayDataModule
from hkd.models.classifier import ClassifierModule, NonFiniteLossError
from hkd.run.checkpoints import resume_checkpoint
from hkd.run.media import fixed_test_batch, wandb_loggers, write_cam_overlays
from hkd.run.test_record import read_intervals
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


def resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """Where a resumed stage continues from (a damaged last.ckpt falls back to a good one)."""
    if not cfg.resume:
        return None
    found = resume_checkpoint(run_dir / "checkpoints")
    return str(found) if found else None


def strip_prefix(metrics: dict, prefix: str) -> dict:
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def fit_and_evaluate(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                     module: ClassifierModule, max_epochs: int, monitor: str, mode: str,
                     job_type: str = "train", ckpt_path: str | None = None,
                     callbacks: list | None = None, options: dict | None = None) -> StageResult:
    """Train, then evaluate the best checkpoint on val and test (one pass over the test split gives
    its metrics, ``test_predictions.csv``, the confidence intervals and the confusion matrix: see
    ``hkd.run.test_record``); figures on rank 0."""
    trainer = build_trainer(cfg, run_dir, max_epochs, monitor, mode, job_type, callbacks, options)
    if not cfg.resume:  # a resumed run continues the same W&B run: its configuration is there
        for logger in trainer.loggers:
            logger.log_hyperparams(to_dotlist(cfg))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except NonFiniteLossError as error:
        finish_wandb(trainer)
        good = resume_checkpoint(run_dir / "checkpoints")
        good_text = f"the last good checkpoint is {good}" if good else "there is no good checkpoint yet"
        raise NonFiniteLossError(f"{error}. Training stopped before that step; {good_text}. "
                                 f"Lower optim.lr or set trainer.gradient_clip_val and resume={run_dir}, "
                                 "or skip such batches with training.nonfinite_loss=skip") from None
    pending = [c.pending_round for c in trainer.callbacks if getattr(c, "waiting_for_review", False)]
    if pending:
        finish_wandb(trainer)
        return StageResult(module, "", is_global_zero=trainer.is_global_zero,
                           waiting_for_review=pending[0])
    checkpoint = trainer.checkpoint_callback
    best = "" if cfg.trainer.fast_dev_run else (checkpoint.best_model_path or checkpoint.last_model_path)
    evaluate_from = best or None
    val = trainer.validate(module, datamodule=datamodule, ckpt_path=evaluate_from, verbose=False)[0]
    test = trainer.test(module, datamodule=datamodule, ckpt_path=evaluate_from, verbose=False)[0]
    result = StageResult(module, best, strip_prefix(val, "val/"), strip_prefix(test, "test/"),
                         trainer.is_global_zero)
    if trainer.is_global_zero:  # the module holds the evaluated (best) weights now
        datamodule.setup()  # under ddp_spawn only the worker processes had set it up
        result.test_intervals = read_intervals(run_dir)  # what the test pass wrote (TestRecord)
        save_explanations(cfg, module, datamodule, run_dir, trainer)
    finish_wandb(trainer)
    return result


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
