"""HKD's teacher: stage 1 in ``RUN_DIR/teacher/``, a classifier trained on ROI images, kept at its
lowest validation loss (the student, ``hkd.methods.hkd``, distils from its frozen features); and
``hkd.cache_teacher_features``: where the frozen teacher sees the same ROI image of a training sample
in every epoch (nothing augments or edits it), its feature maps are computed once, after stage 1,
into a memory-mapped file beside the image cache (named by the teacher checkpoint's bytes and
everything the ROI images depend on, so a new teacher or other data get a new file); the student's
batches then carry their teacher features instead of a teacher forward pass
(``HKDStudent.before_transfer``)."""

from __future__ import annotations

import hashlib
import json
import math
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
from hkd.run.build import build_module
from hkd.run.checkpoints import resume_checkpoint
from hkd.run.run_dir import write_summary
from hkd.run.stage import Stage, train_stage

TEACHER_NOTE = ("the teacher classifies ROI images built from expert annotations: its figures "
                "need annotations at test time and are an upper reference, not a deployable model")


@dataclass(frozen=True)
class TrainedTeacher:
    """HKD's stage 1: the teacher network's weights (kept at its lowest validation loss), the
    checkpoint they came from and the stage's record for summary.json."""

    weights: dict[str, torch.Tensor]
    checkpoint: Path
    record: dict


def network_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The classifier network's weights in a Lightning checkpoint of a ``ClassifierModule``."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}


def existing_teacher(checkpoint: str | Path, record: dict) -> TrainedTeacher:
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"HKD's teacher checkpoint {path} is missing: the student would "
                                "distil from a random teacher")
    return TrainedTeacher(network_weights(path), path, record)


def train_teacher(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                  class_weights: list[float] | None) -> TrainedTeacher:
    """Stage 1, or what an earlier (resumed) run or ``hkd.teacher_checkpoint`` already has."""
    if cfg.hkd.teacher_checkpoint:
        path = Path(cfg.hkd.teacher_checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"hkd.teacher_checkpoint={path}: no such checkpoint")
        return existing_teacher(path, {"best_checkpoint": str(path), "reused": True})
    teacher_dir = run_dir / "teacher"
    summary_path = teacher_dir / "summary.json"
    if cfg.resume and summary_path.is_file():  # killed after stage 1
        record = json.loads(summary_path.read_text())
        return existing_teacher(record["best_checkpoint"], record)
    teacher = build_module(cfg, datamodule.classes, class_weights=class_weights, teacher=True)
    last = resume_checkpoint(teacher_dir / "checkpoints") if cfg.resume else None  # killed in stage 1
    epochs = cfg.hkd.teacher_epochs or cfg.trainer.max_epochs
    fraction, mode = float(cfg.hkd.roi_fraction), cfg.hkd.roi_fraction_mode
    train_images = None  # all of them
    data = datamodule
    if mode in ("subset", "authors") and fraction < 1.0:
        # the sampled images only, for proportionally more epochs: "subset" keeps only their
        # annotations in the data (rounding the epochs); "authors", as PneuKnowNet's train_kd.py,
        # keeps every image's for the student and floors the epochs (20 / 0.3 -> 66)
        positions = datamodule.annotated_training_positions(fraction if mode == "authors" else 1.0)
        data = datamodule.restricted_to(positions)
        train_images = len(positions)
        epochs = max(1, math.floor(epochs / fraction) if mode == "authors" else round(epochs / fraction))
    stage = Stage(teacher_dir, epochs, "val/loss", "min", job_type="teacher",
                  resume_from=str(last) if last else None)
    result = train_stage(cfg, stage, data.with_roi(("train", "val", "test")), teacher)  # on ROI images
    if not result.best_checkpoint:
        raise FileNotFoundError("HKD's stage 1 left no teacher checkpoint: the student would distil "
                                "from a random teacher")
    record = {"epochs": epochs, "train_images": train_images, "val": result.val,
              "test_on_roi": dict(result.test), "best_checkpoint": result.best_checkpoint,
              "note": TEACHER_NOTE}
    if result.is_global_zero:
        write_summary(summary_path, record)
    # the module holds the best checkpoint's weights now (evaluated from it)
    weights = {k: v.detach().cpu().clone() for k, v in result.module.net.state_dict().items()}
    return TrainedTeacher(weights, Path(result.best_checkpoint), record)


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
