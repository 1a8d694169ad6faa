"""The Lightning Trainer of one training stage: checkpoints, loggers (hkd.run.loggers), progress, media."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from omegaconf import DictConfig, OmegaConf

from hkd.run.calibration import Calibration
from hkd.run.callbacks import configured_callbacks
from hkd.run.checkpoints import AtomicCheckpointIO
from hkd.run.evaluation_outputs import EvaluationOutputs
from hkd.run.loggers import build_loggers
from hkd.run.media import MediaCallback
from hkd.run.progress import EpochLines


def build_trainer(cfg: DictConfig, run_dir: Path, max_epochs: int, monitor: str, mode: str,
                  job_type: str = "train", callbacks: list | None = None,
                  options: dict | None = None) -> L.Trainer:
    """Every ``trainer.*`` key goes to ``lightning.Trainer`` as it is (checked against its signature
    when the configuration loads); ``options``: further arguments a stage needs (e.g. IMIL's loader
    reloads); ``max_epochs`` is the stage's."""
    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", monitor=monitor, mode=mode,
                                 filename="best-{epoch:02d}", save_top_k=1)
    # every epoch, improved or not (Lightning's save_last only follows a top-k save): what resume uses
    last = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    arguments = {"enable_model_summary": False, **OmegaConf.to_container(cfg.trainer, resolve=True),
                 **(options or {}), "max_epochs": max_epochs}
    # the deployed model's validation logits and temperature, before its test pass (not a teacher's)
    calibration = [Calibration(run_dir, bool(cfg.calibration.temperature))] if job_type == "train" else []
    progress = [TQDMProgressBar(refresh_rate=max(1, arguments.get("log_every_n_steps") or 1))] \
        if cfg.logging.progress_bar else []
    return L.Trainer(
        default_root_dir=run_dir, logger=build_loggers(cfg, run_dir, job_type),
        callbacks=[checkpoint, last, *progress,
                   MediaCallback(run_dir, cfg.explain.n_images, cfg.logging.images),
                   EvaluationOutputs(run_dir, int(cfg.seed)),
                   *calibration,
                   *configured_callbacks(cfg), *([EpochLines(job_type)] if cfg.logging.epoch_lines else []),
                   *(callbacks or [])],
        enable_progress_bar=cfg.logging.progress_bar, inference_mode=False,
        plugins=[AtomicCheckpointIO()], **arguments)
