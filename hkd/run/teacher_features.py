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
from hkd.models.frozen import FrozenFeatures
from hkd.run.build import build_network
from hkd.run.teacher_stage import TrainedTeacher


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
def cache_teacher_features(cfg: DictConfig, datamodule: ChestXrayDataModule,
                           teacher: TrainedTeacher) -> TeacherFeatureCache:
    """The stage: the teacher's fp32 feature map of every training sample's ROI image, once (a file
    made earlier for the same teacher and ROI images is reused)."""
    check_cacheable(cfg)
    datamodule.setup()
    dataset = datamodule.datasets["train_eval"]
    folder = datamodule.datasets["train"].cache.folder
    target = folder.parent / f"{folder.name}-teacher-{features_key(cfg, teacher.checkpoint, datamodule)}"

    def fill(tmp: Path) -> None:
        with torch.random.fork_rng(devices=[]):  # the student's initialisation never depends on
            net = build_network(cfg, len(datamodule.classes), pretrained=False)  # whether this file existed
        net.load_state_dict(teacher.weights)
        frozen = FrozenFeatures(net.eval())
        loader = DataLoader(dataset, batch_size=cfg.data.eval_batch_size, shuffle=False,
                            num_workers=cfg.data.num_workers)
        features = None
        row = 0
        for batch in loader:
            out = frozen(batch["roi"]).numpy()
            if features is None:
                features = np.lib.format.open_memmap(tmp / "features.npy", "w+", np.float32,
                                                     (len(dataset), *out.shape[1:]))
            features[row:row + len(out)] = out
            row += len(out)
        features.flush()
        rows = np.full(len(datamodule.records), -1, dtype=np.int64)
        rows[dataset.indices] = np.arange(len(dataset))
        np.save(tmp / "rows.npy", rows)
        (tmp / "done").write_text(str(teacher.checkpoint))

    atomic_folder(target, fill, "done")
    return TeacherFeatureCache(np.load(target / "features.npy", mmap_mode="r"), np.load(target / "rows.npy"),
                               {"folder": str(target), "teacher_checkpoint": str(teacher.checkpoint)})
