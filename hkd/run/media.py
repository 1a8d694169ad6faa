"""Figures of a run: Grad-CAM overlays of a fixed set of test images (the first annotated ones),
prior/ROI examples, and their W&B logging (rank 0 only, never with ``logging.images=false``)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger

from hkd.explanations.cam import explain_batch
from hkd.reporting.figures import sample_grid, save_cam_overlays, save_figure


def fixed_batch(dataset, n: int) -> dict | None:
    """The first ``n`` annotated samples of ``dataset`` (or its first ``n``) as one batch."""
    annotated = [p for p in range(len(dataset)) if dataset.has_prior_all[dataset.indices[p]]]
    chosen = (annotated or list(range(len(dataset))))[:n]
    if not chosen:
        return None
    samples = [dataset[p] for p in chosen]
    keys = ("image", "label", "prior") + (("roi",) if "roi" in samples[0] else ())
    return {key: torch.as_tensor(np.stack([np.asarray(s[key]) for s in samples])) for key in keys}


def fixed_test_batch(datamodule, n: int) -> dict | None:
    return fixed_batch(datamodule.datasets["test"], n)


def write_cam_overlays(module, batch: dict, path: Path) -> Path:
    was_training = module.training
    probabilities, cams = explain_batch(module, batch)
    module.train(was_training)
    titles = [f"{module.classes[int(y)]}\npred {module.classes[int(p.argmax())]} {float(p.max()):.2f}"
              for y, p in zip(batch["label"], probabilities)]
    save_cam_overlays(batch[module.input_key][:, 0].numpy(), cams.numpy(),
                      batch["prior"][:, 0].numpy(), titles, path)
    return path


def wandb_loggers(trainer: L.Trainer, images: bool = True) -> list[WandbLogger]:
    """The W&B loggers that may receive images (rank 0 only; none when ``images`` is off)."""
    if not trainer.is_global_zero or not images:
        return []
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


class MediaCallback(Callback):
    """Prior/ROI examples at the start; CAM overlays of the fixed test images every epoch."""

    def __init__(self, run_dir: str | Path, n_images: int, images: bool = True) -> None:
        self.run_dir, self.n_images, self.images = Path(run_dir), n_images, images

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = wandb_loggers(trainer, self.images)
        if not loggers:
            return
        path = self.run_dir / "priors.png"
        save_figure(sample_grid(trainer.datamodule, "train", per_class=2), path)
        for logger in loggers:
            logger.log_image("data/priors_and_roi", images=[str(path)])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = wandb_loggers(trainer, self.images)
        if not loggers or trainer.sanity_checking:
            return
        batch = fixed_test_batch(trainer.datamodule, self.n_images)
        if batch is None:
            return
        path = write_cam_overlays(pl_module, batch, self.run_dir / "cam_overlays_last_epoch.png")
        for logger in loggers:
            logger.log_image("explain/cam_overlays", images=[str(path)], step=trainer.global_step)
