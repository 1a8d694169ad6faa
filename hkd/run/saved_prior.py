"""A lung prior for any chest X-ray data set: ``hkd prior train NAME`` trains the prior generator
on one data set's annotated regions and saves it with its held-out Dice; ``data.prior_generator=
RUN_DIR`` (or the ``.pt`` file) makes it predict the region of every image of another data set
that has none — HKD's prior (``hkd.prior``) and the region of the relevance mass and pointing game.
(Beyond both papers: PneuKnowNet's generator is trained and used on one data set.)"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig

from hkd.atomic import atomic_write
from hkd.config import save_config
from hkd.data.datamodule import ChestXrayDataModule
from hkd.models.prior_generator import (
    GENERATOR_FILE,
    dice_scores,
    generator_path,
    load_generator,
    predict_regions,
    save_generator,
)
from hkd.reporting.figures import mask_overlay_grid
from hkd.run.build import build_datamodule
from hkd.run.prior_stage import train_prior_generator
from hkd.run.run_dir import code_version, new_run_dir, refuse_used_run_dir, write_summary


def held_out_dice(module, preprocessing: dict, datamodule: ChestXrayDataModule,
                  split: str) -> tuple[float | None, int]:
    """Mean Dice of the predicted regions on the split's annotated images, and their number."""
    dataset = datamodule.datasets[split]
    annotated = [idx for idx in dataset.indices if datamodule.has_prior[idx]]
    if not annotated:
        return None, 0
    images = np.stack([dataset.original(idx).numpy() for idx in annotated])
    predicted = torch.from_numpy(predict_regions(module, preprocessing, images))
    truth = torch.from_numpy(np.stack([np.asarray(dataset.cache.relevant[idx]) for idx in annotated]))
    return float(dice_scores(predicted > 0, truth > 0).mean()), len(annotated)


def train_saved_prior(cfg: DictConfig) -> Path:
    """Train the generator on the training split's regions, keep it with its validation and test
    Dice and a figure of its test predictions; return the run directory."""
    started = time.time()
    run_dir = new_run_dir(cfg.output_dir, cfg.name)
    refuse_used_run_dir(run_dir)
    save_config(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    module, info = train_prior_generator(cfg, run_dir, datamodule, "prior")
    data = cfg.data
    preprocessing = {"image_size": int(data.image_size), "channels": int(data.channels),
                     "mean": list(data.mean), "std": list(data.std),
                     "threshold": float(cfg.prior_generator.threshold)}
    test_dice, n_test = held_out_dice(module, preprocessing, datamodule, "test")
    record = {"name": cfg.name, "data": data.format, "root": str(data.root) if data.root else None,
              "relevant_categories": list(data.relevant_categories or []), "seed": cfg.seed,
              **info, "test_dice": test_dice, "n_test": n_test, "preprocessing": preprocessing,
              "duration_s": round(time.time() - started, 2), "git_commit": code_version()}
    save_generator(module, run_dir / GENERATOR_FILE, preprocessing, record)
    test = datamodule.datasets["test"]
    shown = [int(idx) for idx in test.indices[:8]]
    if shown:
        images = np.stack([test.original(idx).numpy() for idx in shown])
        mask_overlay_grid(images, predict_regions(module, preprocessing, images),
                          run_dir / "test_predictions.png")
    write_summary(run_dir / "summary.json", record)
    return run_dir


def saved_prior_masks(path: Path, images: np.ndarray, cache_folder: Path) -> np.ndarray:
    """The generator's masks of ``images`` (N, C, S, S), computed once per generator file and
    image cache and kept beside the cache."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    cached = cache_folder.parent / f"{cache_folder.name}-regions-{digest}.npy"
    if cached.is_file():
        return np.load(cached, mmap_mode="r")
    module, preprocessing = load_generator(path)
    masks = predict_regions(module, preprocessing, images)
    atomic_write(cached, lambda tmp: np.save(open(tmp, "wb"), masks))
    return masks


def apply_saved_prior(cfg: DictConfig, datamodule: ChestXrayDataModule) -> dict | None:
    """``data.prior_generator``: predicted regions for every image without one (all splits);
    None when the key is not set."""
    if not cfg.data.prior_generator:
        return None
    path = generator_path(cfg.data.prior_generator)
    datamodule.prepare_data()
    datamodule.setup()
    missing = np.flatnonzero(~datamodule.has_prior)
    folder = datamodule.decoded_folder
    masks = saved_prior_masks(path, np.load(folder / "images.npy", mmap_mode="r"), folder)
    predicted = {int(idx): np.asarray(masks[idx]) for idx in missing if masks[idx].any()}
    datamodule.set_predicted_priors(predicted, splits=("train", "train_eval", "val", "test"))
    return {"generator": str(path), "n_predicted": len(predicted), "n_without_region": len(missing)}
