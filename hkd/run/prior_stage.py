"""The prior-generator stage: train it on the annotated training images, predict the rest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Subset

from hkd.data.datamodule import ChestXrayDataModule
from hkd.models.prior_generator import PriorGeneratorModule, predict_masks
from hkd.run.csv_logger import AppendingCSVLogger


def train_prior_generator(cfg: DictConfig, out_dir: Path, datamodule: ChestXrayDataModule,
                          target: str, positions: list[int] | None = None,
                          ) -> tuple[PriorGeneratorModule, dict]:
    """Fit a generator on the training samples (at ``positions``, default: all annotated)."""
    datamodule.prepare_data()
    datamodule.setup()
    train = datamodule.datasets["train"]
    if positions is None:
        flags = datamodule.has_prior[train.indices]
        positions = np.flatnonzero(flags).tolist()
    if not positions:
        raise ValueError("the prior generator needs annotated training images; none are left "
                         "(check hkd.roi_fraction and the annotations)")
    g = cfg.prior_generator
    module = PriorGeneratorModule(in_channels=cfg.data.channels, target=target,
                                  features=tuple(g.features), lr=g.lr)
    batch_size = min(cfg.data.batch_size, len(positions))
    loader = DataLoader(Subset(train, positions), batch_size=batch_size, shuffle=True,
                        num_workers=cfg.data.num_workers)
    trainer = L.Trainer(max_epochs=g.epochs, accelerator=cfg.trainer.accelerator,
                        devices=cfg.trainer.devices, strategy=cfg.trainer.strategy,
                        precision=cfg.trainer.precision, logger=AppendingCSVLogger(str(out_dir)),
                        enable_checkpointing=False, enable_progress_bar=cfg.logging.progress_bar,
                        enable_model_summary=False, log_every_n_steps=1,
                        limit_val_batches=cfg.trainer.limit_val_batches)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=datamodule.val_dataloader())
    dice = trainer.callback_metrics.get("prior_generator/val_dice")
    return module, {"n_train": len(positions), "epochs": g.epochs,
                    "val_dice": float(dice) if dice is not None else None}


@dataclass(frozen=True)
class PredictedPriors:
    """HKD's prior stage: predicted regions of the training images without (used) annotations."""

    masks: dict[int, np.ndarray]  # data set row -> region mask at the cache's size
    record: dict  # for summary.json (prior_generator)


def predict_missing_priors(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                           ) -> PredictedPriors:
    """Train the prior generator on the annotated training images and predict the others."""
    module, info = train_prior_generator(cfg, run_dir / "prior_generator", datamodule, "prior")
    train_eval = datamodule.datasets["train_eval"]
    missing = [p for p, idx in enumerate(train_eval.indices) if not datamodule.has_prior[idx]]
    masks, _ = predict_masks(module, train_eval, missing, cfg.prior_generator.threshold)
    masks = {idx: mask for idx, mask in masks.items() if mask.any()}
    return PredictedPriors(masks, {**info, "n_predicted": len(masks)})
