"""What a run does for a method beyond building it from its ``method.*`` keys, in one registry: how
the method is built, the steps before it trains (HKD: prior, teacher, features) and whether the
data keeps the training images' annotations. A method without an entry is built from its
``method.*`` keys and trains at once; code outside hkd adds an entry with
``@METHOD_RUNS.register("name")`` beside its ``@METHODS.register("name")``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from hkd.config.registry import Registry

if TYPE_CHECKING:
    from pathlib import Path

    from hkd.data.datamodule import ChestXrayDataModule
    from hkd.methods import Method

# (cfg, run_dir, datamodule, class weights) -> (the method, ready to train; its steps' records)
Preparation = Callable[[DictConfig, "Path", "ChestXrayDataModule", "list[float] | None"],
                       "tuple[Method, dict]"]


def always(cfg: DictConfig) -> bool:
    return True


def training_split(cfg: DictConfig) -> tuple[str, ...]:
    return ("train",)


@dataclass(frozen=True)
class MethodRun:
    build: Callable[[DictConfig, int], Method] | None = None  # (cfg, classes) -> the method; None: method.*
    prepare: Preparation | None = None  # the steps before it trains; None: build it and train
    uses_annotations: Callable[[DictConfig], bool] = always  # False: the data drops every annotation
    roi_splits: Callable[[DictConfig], tuple[str, ...]] = training_split  # where the method reads ROI images


METHOD_RUNS: Registry[MethodRun] = Registry("method.name", {"hkd": "hkd.run.hkd_pipeline:HKD_RUN",
                                                             "jtt": "hkd.run.jtt_pipeline:JTT_RUN"})
PLAIN = MethodRun()


def method_run(cfg: DictConfig) -> MethodRun:
    """The run-wing entry of the configured method (``PLAIN`` for a method without one)."""
    return METHOD_RUNS[cfg.method.name] if cfg.method.name in METHOD_RUNS else PLAIN
