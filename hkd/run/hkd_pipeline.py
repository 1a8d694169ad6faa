"""HKD as one pipeline: prior -> teacher -> features -> student. Each step hands its result to
the next in memory; the run directory keeps each step's record (and the teacher's checkpoints),
so a run killed between steps resumes after the last finished one.

1. prior (``hkd.prior=predicted``, without a saved ``data.prior_generator``): a prior generator
   trained on the annotated training images predicts the regions of the others;
2. teacher (stage 1, ``RUN_DIR/teacher/``): a classifier on ROI images built from those regions;
3. features (``hkd.cache_teacher_features``): the frozen teacher's feature maps of every training
   sample, computed once;
4. the student (``hkd.methods.hkd.HKDStudent``) with the trained teacher, ready to train on raw
   images; its training batches carry ROI images for the teacher (none with cached features)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from hkd.data.datamodule import ChestXrayDataModule
from hkd.errors import ConfigError
from hkd.methods.hkd import HKDStudent, default_kd_epochs
from hkd.run.build import build_network
from hkd.run.method_runs import MethodRun
from hkd.run.prior_stage import predict_missing_priors
from hkd.run.teacher import cache_teacher_features, train_teacher


def build_hkd_student(cfg: DictConfig, num_classes: int) -> HKDStudent:
    """HKD's student method with a placeholder teacher for stage 1's weights, built on a forked RNG
    so it takes no random numbers from the student's initialisation or data order."""
    with torch.random.fork_rng(devices=[]):
        teacher = build_network(cfg, num_classes, pretrained=False)
    return HKDStudent(teacher, alpha0=float(cfg.hkd.alpha),
                      kd_epochs=default_kd_epochs(cfg.hkd.kd_epochs, int(cfg.trainer.max_epochs)),
                      teacher_autocast=cfg.hkd.teacher_precision == "autocast")


def refuse_without_regions(datamodule: ChestXrayDataModule) -> None:
    """HKD without any training image's region would train its teacher on raw images: a
    self-distillation control, not HKD. Refused, saying how to give regions."""
    datamodule.setup()
    train = datamodule.datasets["train"]
    if not any(train.has_region(int(idx)) for idx in train.indices):
        raise ConfigError(
            f"method.name=hkd: none of the {len(train.indices)} training images has a relevant region, so "
            "the teacher would see the raw images and HKD would become self-distillation. Give regions "
            "(annotations, data.relevant_categories, a saved lung prior with data.prior_generator=RUN, or "
            "hkd.prior=predicted with some annotated images), ask for the control with hkd.prior=none, or "
            "train method.name=baseline")


def prepare_hkd(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                class_weights: list[float] | None) -> tuple[HKDStudent, dict]:
    """HKD's steps before the student trains: the student method and each step's record."""
    records: dict = {}
    if cfg.hkd.prior == "predicted" and not cfg.data.prior_generator:
        priors = predict_missing_priors(cfg, run_dir, datamodule)
        datamodule.set_predicted_priors(priors.masks)
        records["prior_generator"] = priors.record
    if cfg.hkd.prior != "none":  # none: the self-distillation control, asked for
        refuse_without_regions(datamodule)
    teacher = train_teacher(cfg, run_dir, datamodule, class_weights)
    records["teacher"] = teacher.record
    student = build_hkd_student(cfg, len(datamodule.classes))
    student.load_teacher(teacher.weights)
    if cfg.hkd.cache_teacher_features:
        features = cache_teacher_features(cfg, datamodule, student, teacher.checkpoint)
        student.use_teacher_features(features.features, features.rows)
        records["teacher_features"] = features.record
    return student, records


# HKD in the run wing (``hkd.run.method_runs``): hkd.prior=none is the self-distillation control, whose
# data keeps no annotations (the teacher sees raw images); the student's batches carry ROI images for
# the teacher's pass, or none when its features are cached
HKD_RUN = MethodRun(build=build_hkd_student, prepare=prepare_hkd,
                    uses_annotations=lambda cfg: cfg.hkd.prior != "none",
                    roi_splits=lambda cfg: () if cfg.hkd.cache_teacher_features else ("train",))
