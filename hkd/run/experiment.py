"""Run one experiment: data, the method's stages, the model, training, evaluation and the record.

``python -m hkd train NAME [key=value ...]`` or ``make experiment NAME=... ARGS="..."``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from hkd.config import load_run_config, save_config
from hkd.data.datamodule import ChestXrayDataModule
from hkd.data.dicom import DICOM_SUFFIXES, HEADER_METADATA
from hkd.errors import ConfigError
from hkd.methods import METHODS
from hkd.models.nonfinite import NonFiniteLossError
from hkd.reporting.model_card import write_model_card
from hkd.run import imil_setup
from hkd.run.build import build_datamodule, build_method, build_module
from hkd.run.data_check import check_data_set
from hkd.run.last_epoch import checkpoint_epoch
from hkd.run.method_runs import method_run
from hkd.run.run_dir import (
    code_version,
    config_fingerprint,
    new_run_dir,
    refuse_used_run_dir,
    requeued_slurm_run,
    write_summary,
)
from hkd.run.saved_prior import apply_saved_prior
from hkd.run.stage import Stage, StageResult, resume_path, train_stage

__all__ = ["NonFiniteLossError", "run_experiment"]
log = logging.getLogger(__name__)


def train_class_weights(cfg: DictConfig, datamodule: ChestXrayDataModule) -> list[float] | None:
    if not cfg.model.class_weights:
        return None
    counts = np.array(datamodule.train_class_counts(), dtype=np.float64)
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1))
    return weights.tolist()


def counterfactual_coverage(datamodule: ChestXrayDataModule) -> dict | None:
    """Which validation images the counterfactual views cover; one clear warning when none has a
    relevant region (their ``val/cf*`` keys are then absent, never zero)."""
    coverage = datamodule.counterfactual_coverage()
    if coverage is not None and coverage["with_region"] == 0:
        log.warning("counterfactual.enabled: none of the %d validation images has a relevant region "
                    "(annotations, or data.prior_generator): no val/cf/* or val/roi/* keys are logged",
                    coverage["val_images"])
    elif coverage is not None and coverage["without_region"]:
        log.warning("counterfactual views: %d of %d validation images have no relevant region and are "
                    "left out (first: %s)", coverage["without_region"], coverage["val_images"],
                    ", ".join(coverage["without_region_first"][:3]))
    return coverage


def check_report_columns(cfg: DictConfig, datamodule: ChestXrayDataModule) -> None:
    """``report.by`` names metadata the data set has, checked before training, not after."""
    known = {key for record in datamodule.records for key in record.metadata}
    if any(Path(record.path).suffix.lower() in DICOM_SUFFIXES for record in datamodule.records):
        known |= set(HEADER_METADATA)  # read from the test images' headers
    missing = [column for column in cfg.report.by if column not in known]
    if missing:
        raise ConfigError(f"report.by={list(cfg.report.by)}: {', '.join(missing)} is not a metadata column "
                          f"of data.format={cfg.data.format} (it has: {', '.join(sorted(known)) or 'none'})")


def resume_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The config of the run being resumed, with this command's overrides on top."""
    run_dir = Path(cfg.resume)
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume={run_dir}: no config.yaml there (is it a run directory?)")
    resumed = load_run_config(saved, [o for o in overrides if not o.startswith("resume=")])
    resumed.resume = str(run_dir)
    return resumed


def run_experiment(cfg: DictConfig, overrides: list[str] | None = None,
                   extra_callbacks: list | None = None) -> Path:
    """Train and evaluate as configured; return the run directory. ``extra_callbacks`` join the
    main stage's Trainer (e.g. ``hkd tune``'s pruning callback)."""
    started = time.time()
    if cfg.resume:
        cfg = resume_config(cfg, overrides or [])
        run_dir = Path(cfg.resume)
    else:
        run_dir = new_run_dir(cfg.output_dir, cfg.name, config_fingerprint(cfg))
        if requeued_slurm_run(run_dir, os.environ):
            log.warning("SLURM requeued job %s (restart %s): continuing %s", os.environ.get("SLURM_JOB_ID"),
                        os.environ.get("SLURM_RESTART_COUNT"), run_dir)
            cfg = resume_config(OmegaConf.merge(cfg, {"resume": str(run_dir)}), overrides or [])
        else:
            refuse_used_run_dir(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision("high")
    method_class = METHODS[cfg.method.name]
    reads_roi = "roi" in method_class.inputs  # e.g. HKD's student, for its teacher's pass
    datamodule = build_datamodule(cfg, roi_mode=cfg.hkd.roi_mode if reads_roi else None,
                                  roi_splits=method_run(cfg).roi_splits(cfg))
    check_data_set(run_dir, datamodule.fingerprint(), resuming=bool(cfg.resume),
                   allow_split_change=bool(cfg.data.allow_split_change))
    check_report_columns(cfg, datamodule)
    class_weights = train_class_weights(cfg, datamodule)
    saved_prior = apply_saved_prior(cfg, datamodule)
    prepare = method_run(cfg).prepare  # the steps a method needs before it trains (HKD: prior, teacher)
    method, stage_records = (prepare(cfg, run_dir, datamodule, class_weights) if prepare
                             else (build_method(cfg, len(datamodule.classes)), {}))
    counterfactual = counterfactual_coverage(datamodule)
    module = build_module(cfg, datamodule.classes, method, class_weights)
    callbacks = [*imil_setup.callbacks(cfg, run_dir), *(extra_callbacks or [])]
    stage = Stage(run_dir, int(cfg.trainer.max_epochs), cfg.checkpoint.monitor, cfg.checkpoint.mode,
                  resume_from=resume_path(cfg, run_dir), callbacks=tuple(callbacks),
                  options=imil_setup.trainer_options(cfg))
    result = train_stage(cfg, stage, datamodule, module)
    if result.waiting_for_review is not None:
        if result.is_global_zero:
            print(f"IMIL round {result.waiting_for_review} waits for review in "
                  f"{run_dir / 'imil' / f'round_{result.waiting_for_review}'}.\n"
                  f"  review:   hkd review {run_dir}\n"
                  f"  continue: hkd train {cfg.name} resume={run_dir}")
        return run_dir
    if result.is_global_zero:
        splits = datamodule.split_summary()
        summary = build_summary(cfg, run_dir, result, started, stage_records, splits["train"]["images"])
        if saved_prior is not None:
            summary["saved_prior"] = saved_prior
        if counterfactual is not None:
            summary["counterfactual"] = counterfactual
        write_summary(run_dir / "summary.json", {**summary, "splits": splits})
        write_model_card(run_dir, cfg)
    return run_dir


def last_epoch_fields(result: StageResult) -> dict:
    """``epochs`` (the selected and the last, 0-based) and the last epoch's ``val_last_epoch`` and
    ``test_last_epoch`` metrics (``hkd.run.last_epoch``), beside the selected checkpoint's."""
    if not result.last_epoch:
        return {}
    last = result.last_epoch
    return {"epochs": {"selected": checkpoint_epoch(result.best_checkpoint), "last": last["epoch"]},
            "val_last_epoch": last.get("val", {}), "test_last_epoch": last.get("test", {})}


def build_summary(cfg: DictConfig, run_dir: Path, result: StageResult, started: float,
                  stage_records: dict, n_train: int) -> dict:
    test = dict(result.test)
    explanations = {key: test.pop(key) for key in ("relevance_mass", "pointing_game") if key in test}
    return {"name": cfg.name, "method": cfg.method.name, "seed": cfg.seed,
            "backbone": cfg.model.backbone, "data": cfg.data.format,
            "fold": cfg.data.fold if cfg.data.folds else None,
            "imil": imil_setup.is_enabled(cfg), "classes": result.module.classes,
            "val": result.val, "test": test, "explanations": explanations,
            "test_ci": result.test_intervals,
            "best_checkpoint": result.best_checkpoint, "run_dir": str(run_dir),
            **last_epoch_fields(result),
            "skipped_batches": result.module.skipped_batches,
            "duration_s": round(time.time() - started, 2), "git_commit": code_version(), **stage_records,
            **imil_setup.summary_fields(cfg, run_dir, n_train)}
