"""Run one experiment: data, (teacher,) model, Trainer, evaluation and the run record.

``python -m hkd train NAME [key=value ...]`` or ``make experiment NAME=... ARGS="..."``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from hkd.callbacks.media import MediaCallback, fixed_test_batch, wandb_loggers, write_cam_overlays
from hkd.checkpoints import AtomicCheckpointIO, resume_checkpoint
from hkd.config import ConfigError, save_config, to_dotlist
from hkd.csv_log import AppendingCSVLogger
from hkd.data.datamodule import PneumoniaDataModule
from hkd.models.lit_module import ClassifierModule, NonFiniteLossError
from hkd.records_io import RUN_ID_ENV, new_run_dir, save_confusion_matrix, write_summary


@dataclass
class StageResult:
    module: ClassifierModule
    best_checkpoint: str
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    is_global_zero: bool = True
    waiting_for_review: int | None = None  # an IMIL round that waits for a clinician


def build_loggers(cfg: DictConfig, run_dir: Path, job_type: str) -> list:
    loggers: list = [AppendingCSVLogger(str(run_dir))]
    if cfg.logging.wandb != "disabled":
        loggers.append(WandbLogger(
            save_dir=str(run_dir), project=cfg.logging.project, entity=cfg.logging.entity,
            name=f"{cfg.name}/{run_dir.name}" + ("" if job_type == "train" else f"/{job_type}"),
            group=cfg.name, job_type=job_type, offline=cfg.logging.wandb == "offline",
            log_model=cfg.logging.log_model,
            tags=[cfg.method.name, cfg.model.backbone, cfg.data.format]
            + (["imil"] if cfg.imil.enabled else [])))
    return loggers


def build_trainer(cfg: DictConfig, run_dir: Path, max_epochs: int, monitor: str, mode: str,
                  job_type: str = "train", callbacks: list | None = None) -> L.Trainer:
    t = cfg.trainer
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=monitor, mode=mode,
                                 filename="best-{epoch:02d}", save_top_k=1)
    # every epoch, improved or not (Lightning's save_last only follows a top-k save): what resume uses
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    progress = [TQDMProgressBar(refresh_rate=max(1, t.log_every_n_steps))] \
        if cfg.logging.progress_bar else []
    return L.Trainer(
        default_root_dir=run_dir, max_epochs=max_epochs, accelerator=t.accelerator,
        devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
        log_every_n_steps=t.log_every_n_steps, gradient_clip_val=t.gradient_clip_val,
        deterministic=t.deterministic, fast_dev_run=t.fast_dev_run,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches, logger=build_loggers(cfg, run_dir, job_type),
        callbacks=[checkpoint, last, *progress, MediaCallback(run_dir, cfg.explain.n_images),
                   *(callbacks or [])],
        reload_dataloaders_every_n_epochs=1 if cfg.imil.enabled and job_type == "train" else 0,
        enable_progress_bar=cfg.logging.progress_bar, inference_mode=False,
        enable_model_summary=False, plugins=[AtomicCheckpointIO()])


def resume_path(cfg: DictConfig, run_dir: Path) -> str | None:
    """Where a resumed stage continues from (a damaged last.ckpt falls back to a good one)."""
    if not cfg.resume:
        return None
    found = resume_checkpoint(run_dir / "checkpoints")
    return str(found) if found else None


def strip_prefix(metrics: dict, prefix: str) -> dict:
    return {k[len(prefix):]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def fit_and_evaluate(cfg: DictConfig, run_dir: Path, datamodule: PneumoniaDataModule,
                     module: ClassifierModule, max_epochs: int, monitor: str, mode: str,
                     job_type: str = "train", ckpt_path: str | None = None,
                     callbacks: list | None = None) -> StageResult:
    """Train, then evaluate the best checkpoint on val and test; figures on rank 0."""
    trainer = build_trainer(cfg, run_dir, max_epochs, monitor, mode, job_type, callbacks)
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
                                 "or skip such batches with trainer.nonfinite_loss=skip") from None
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
    if trainer.is_global_zero:
        if module.confusion_matrix is not None:
            save_confusion_matrix(module.confusion_matrix, module.classes,
                                  run_dir / "confusion_matrix.png")
        save_explanations(cfg, module, datamodule, run_dir, trainer)
    finish_wandb(trainer)
    return result


def finish_wandb(trainer: L.Trainer) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            logger.experiment.finish()


def imil_callbacks(cfg: DictConfig, run_dir: Path) -> list:
    if not cfg.imil.enabled:
        return []
    from hkd.callbacks.imil import IMILCallback

    return [IMILCallback(cfg.imil, run_dir)]


def save_explanations(cfg: DictConfig, module: ClassifierModule, datamodule: PneumoniaDataModule,
                      run_dir: Path, trainer: L.Trainer) -> None:
    """Final CAM overlays of the fixed test images; both figures to W&B."""
    batch = fixed_test_batch(datamodule, cfg.explain.n_images)
    figures = {"test/confusion_matrix": run_dir / "confusion_matrix.png"}
    if batch is not None:
        figures["explain/cam_overlays_best"] = write_cam_overlays(module, batch, run_dir / "cam_overlays.png")
    for logger in wandb_loggers(trainer):
        for key, path in figures.items():
            if path.is_file():
                logger.log_image(key, images=[str(path)])


def train_class_weights(cfg: DictConfig, datamodule: PneumoniaDataModule) -> list[float] | None:
    if not cfg.model.class_weights:
        return None
    counts = np.array(datamodule.train_class_counts(), dtype=np.float64)
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1))
    return weights.tolist()


def resume_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The config of the run being resumed, with this command's overrides on top."""
    run_dir = Path(cfg.resume)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume={run_dir}: no config.yaml there (is it a run directory?)")
    resumed = OmegaConf.load(saved)
    OmegaConf.set_struct(resumed, True)
    for override in overrides:
        if not override.startswith("resume="):
            resumed = OmegaConf.merge(resumed, OmegaConf.from_dotlist([override]))
    resumed.resume = str(run_dir)
    return resumed


def refuse_used_run_dir(run_dir: Path) -> None:
    """A fresh run must not train into a directory an earlier run left checkpoints in (a reused
    ``HKD_RUN_ID``): it would mix their metrics and continue a stale HKD teacher."""
    used = [path for path in (run_dir / "checkpoints", run_dir / "teacher" / "checkpoints")
            if path.is_dir() and any(path.iterdir())]
    if used:
        raise ConfigError(f"{run_dir} already holds a run (checkpoints in {used[0]}): continue it with "
                          f"resume={run_dir}, or start a new one with another {RUN_ID_ENV}")


def run_experiment(cfg: DictConfig, overrides: list[str] | None = None) -> Path:
    """Train and evaluate as configured; return the run directory."""
    started = time.time()
    if cfg.resume:
        cfg = resume_config(cfg, overrides or [])
        run_dir = Path(cfg.resume)
    else:
        run_dir = new_run_dir(cfg.output_dir, cfg.name)
        refuse_used_run_dir(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    if cfg.method.name == "hkd":
        from hkd.hkd_pipeline import run_hkd

        result, extra = run_hkd(cfg, run_dir)
    else:
        datamodule = PneumoniaDataModule(cfg)
        datamodule.describe()
        module = ClassifierModule(OmegaConf.to_container(cfg), datamodule.classes,
                                  train_class_weights(cfg, datamodule))
        result = fit_and_evaluate(cfg, run_dir, datamodule, module, cfg.trainer.max_epochs,
                                  cfg.checkpoint.monitor, cfg.checkpoint.mode,
                                  ckpt_path=resume_path(cfg, run_dir),
                                  callbacks=imil_callbacks(cfg, run_dir))
        extra = {}
    if result.waiting_for_review is not None:
        if result.is_global_zero:
            print(f"IMIL round {result.waiting_for_review} waits for review in "
                  f"{run_dir / 'imil' / f'round_{result.waiting_for_review}'}.\n"
                  f"  review:   hkd review {run_dir}\n"
                  f"  continue: hkd train {cfg.name} resume={run_dir}")
        return run_dir
    if result.is_global_zero:
        write_summary(run_dir / "summary.json", build_summary(cfg, run_dir, result, started, extra))
    return run_dir


def build_summary(cfg: DictConfig, run_dir: Path, result: StageResult, started: float,
                  extra: dict) -> dict:
    test = dict(result.test)
    if cfg.imil.enabled and (run_dir / "imil" / "edits.json").is_file():
        edits = json.loads((run_dir / "imil" / "edits.json").read_text())
        extra = {**extra, "imil_rounds": [{k: v for k, v in r.items() if k not in ("selected",)}
                                          for r in edits["rounds"]],
                 "imil_edited": edits["n_edited"], "imil_clinician_edits": edits["n_clinician"]}
    explanations = {key: test.pop(key) for key in ("relevance_mass", "pointing_game") if key in test}
    return {"name": cfg.name, "method": cfg.method.name, "seed": cfg.seed,
            "backbone": cfg.model.backbone, "data": cfg.data.format,
            "fold": cfg.data.fold if cfg.data.folds else None,
            "imil": bool(cfg.imil.enabled), "classes": result.module.classes,
            "val": result.val, "test": test, "explanations": explanations,
            "best_checkpoint": result.best_checkpoint, "run_dir": str(run_dir),
            "skipped_batches": result.module.skipped_batches,
            "duration_s": round(time.time() - started, 2), **extra}
