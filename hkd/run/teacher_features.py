"""``hkd.cache_teacher_features``: HKD's frozen teacher sees the same ROI image of a training
sample in every epoch when nothing augments or edits it, so its feature maps are computed once,
after stage 1, into a memory-mapped file beside the image cache (named by the teacher
checkpoint's bytes and everything the ROI images depend on, so a new teacher or other data get a
new file). The student's batches then carry their teacher features from the file instead of a
teacher forward pass (``HKDStudent.before_transfer``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from hkd.atomic import atomic_folder
from hkd.config import check_cacheable
from hkd.data.datamodule import ChestXrayDataModule
from hkd.methods.hkd import HKDStudent


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


@dataclass(frozen=True)
class TeacherFeatureCache:
    """The teacher's feature map of every training sample (a memory map) and where each data set
    row's map is (``rows[idx]``; -1 outside training)."""

    features: np.ndarray
    rows: np.ndarray
    record: dict  # for summary.json (teacher_features)


@torch.no_grad()
def cache_teacher_features(cfg: DictConfig, datamodule: ChestXrayDataModule, student: HKDStudent,
                           checkpoint: Path) -> TeacherFeatureCache:
    """The stage: the fp32 feature map that ``student``'s frozen teacher (stage 1's weights, from
    ``checkpoint``) gives every training sample's ROI image, once, through the same pass training
    would run (a file made earlier for the same teacher and ROI images is reused)."""
    check_cacheable(cfg)
    dataset = datamodule.with_roi(("train_eval",)).datasets["train_eval"]
    folder = datamodule.datasets["train"].cache.folder
    target = folder.parent / f"{folder.name}-teacher-{features_key(cfg, checkpoint, datamodule)}"

    def fill(tmp: Path) -> None:
        loader = DataLoader(dataset, batch_size=cfg.data.eval_batch_size, shuffle=False,
                            num_workers=cfg.data.num_workers)
        features = None
        row = 0
        for batch in loader:
            out = student.teacher_features(batch["roi"]).numpy()
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
    return TeacherFeatureCache(np.load(target / "features.npy", mmap_mode="r"), np.load(target / "rows.npy"),
                               {"folder": str(target), "teacher_checkpoint": str(checkpoint)})
