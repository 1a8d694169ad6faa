"""``hkd.cache_teacher_features``: HKD's frozen teacher sees the same ROI image of a training
sample in every epoch when nothing augments or edits it, so its feature maps are computed once,
after stage 1, into a memory-mapped file beside the image cache (named by the teacher
checkpoint's bytes and everything the ROI images depend on, so a new teacher or other data get a
new file). The student's batches then carry their teacher features from the file instead of a
teacher forward pass (``HKDStudent.before_transfer``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from hkd.atomic import atomic_folder
from hkd.config import check_cacheable
from hkd.data.datamodule import ChestXrayDataModule
from hkd.models.frozen import FrozenFeatures
from hkd.run.checkpoints import load_classifier


def teacher_checkpoint(cfg: DictConfig, run_dir: Path) -> Path:
    if cfg.hkd.teacher_checkpoint:
        return Path(cfg.hkd.teacher_checkpoint)
    return Path(json.loads((run_dir / "teacher" / "summary.json").read_text())["best_checkpoint"])


def features_key(cfg: DictConfig, checkpoint: Path, datamodule: ChestXrayDataModule) -> str:
    digest = hashlib.sha256(checkpoint.read_bytes())
    settings = {"roi_mode": cfg.hkd.roi_mode, "roi_fill": cfg.hkd.roi_fill,
                "soft_edge": cfg.data.prior_soft_edge, "fill_mean": cfg.data.fill_mean,
                "images": datamodule.datasets["train"].cache.folder.name}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(datamodule.has_prior).tobytes())
    for idx, mask in sorted(datamodule.datasets["train_eval"].predicted_priors.items()):
        digest.update(str(idx).encode() + np.ascontiguousarray(mask).tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def cache_teacher_features(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                           class_weights: list[float] | None = None) -> dict | None:
    """The stage: the teacher's fp32 feature map of every training sample's ROI image, once."""
    if not cfg.hkd.cache_teacher_features:
        return None
    check_cacheable(cfg)
    checkpoint = teacher_checkpoint(cfg, run_dir)
    datamodule.setup()
    dataset = datamodule.datasets["train_eval"]
    folder = datamodule.datasets["train"].cache.folder
    target = folder.parent / f"{folder.name}-teacher-{features_key(cfg, checkpoint, datamodule)}"

    def fill(tmp: Path) -> None:
        teacher = FrozenFeatures(load_classifier(checkpoint, with_method=False).net.eval())
        loader = DataLoader(dataset, batch_size=cfg.data.eval_batch_size, shuffle=False,
                            num_workers=cfg.data.num_workers)
        features = None
        row = 0
        for batch in loader:
            out = teacher(batch["roi"]).numpy()
            if features is None:
                features = np.lib.format.open_memmap(tmp / "features.npy", "w+", np.float32,
                                                     (len(dataset), *out.shape[1:]))
            features[row:row + len(out)] = out
            row += len(out)
        features.flush()
        rows = np.full(len(datamodule.records), -1, dtype=np.int64)
        rows[dataset.indices] = np.arange(len(dataset))
        np.save(tmp / "rows.npy", rows)
        (tmp / "done").write_text(str(checkpoint))

    atomic_folder(target, fill, "done")
    return {"folder": str(target), "teacher_checkpoint": str(checkpoint)}
