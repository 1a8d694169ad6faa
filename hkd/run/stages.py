"""Stages a method declares (``Method.stages``) that run before it trains, by name. Each takes
``(cfg, run_dir, datamodule, class_weights)`` and returns a record for ``summary.json`` (under the
stage's name) that the method also receives, or None when it had nothing to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from hkd.data.datamodule import ChestXrayDataModule
from hkd.registry import Registry
from hkd.run.prior_stage import fill_missing_priors
from hkd.run.teacher_features import cache_teacher_features
from hkd.run.teacher_stage import train_teacher

Stage = Callable[[DictConfig, Path, ChestXrayDataModule, "list[float] | None"], "dict | None"]

STAGES: Registry[Stage] = Registry("stage")
STAGES.register("prior_generator")(fill_missing_priors)
STAGES.register("teacher")(train_teacher)
STAGES.register("teacher_features")(cache_teacher_features)
