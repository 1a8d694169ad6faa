"""What runs before a method trains, by method: HKD's pipeline (prior, teacher, features) builds its
student; every other method is built as configured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from hkd.config.registry import Registry
from hkd.data.datamodule import ChestXrayDataModule
from hkd.methods import Method
from hkd.run.build import build_method
from hkd.run.hkd_pipeline import prepare_hkd

# (cfg, run_dir, datamodule, class weights) -> (the method, ready to train; its steps' records)
Preparation = Callable[[DictConfig, Path, ChestXrayDataModule, "list[float] | None"], "tuple[Method, dict]"]
PREPARATIONS: Registry[Preparation] = Registry("method.name")
PREPARATIONS.register("hkd")(prepare_hkd)


def prepare_method(cfg: DictConfig, run_dir: Path, datamodule: ChestXrayDataModule,
                   class_weights: list[float] | None) -> tuple[Method, dict]:
    """The configured method, after the steps it needs (records for summary.json by step)."""
    if cfg.method.name in PREPARATIONS:
        return PREPARATIONS[cfg.method.name](cfg, run_dir, datamodule, class_weights)
    return build_method(cfg, len(datamodule.classes)), {}
