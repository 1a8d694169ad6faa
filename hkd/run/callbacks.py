"""The optional callbacks of the ``callbacks`` section: Lightning's early stopping, learning-rate
monitor and stochastic weight averaging, and a user's own classes by import path."""

from __future__ import annotations

import importlib

from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    StochasticWeightAveraging,
)
from omegaconf import DictConfig, OmegaConf

from hkd.errors import ConfigError


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def construct(cls: type, arguments: dict, key: str) -> Callback:
    try:
        return cls(**arguments)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{key}: {cls.__name__}({arguments}) fails: {error}") from error


def user_callback(spec, key: str) -> Callback:
    """``{class_path: package.module.Class, init_args: {...}}`` -> an instance."""
    spec = plain(spec)
    path = spec.get("class_path", "") if isinstance(spec, dict) else ""
    if "." not in path:
        raise ConfigError(f"{key}: give {{class_path: package.module.Class, init_args: {{...}}}}")
    module_name, class_name = path.rsplit(".", 1)
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{key}.class_path={path}: cannot import it: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, Callback)):
        raise ConfigError(f"{key}.class_path={path} is not a lightning Callback class")
    return construct(cls, spec.get("init_args") or {}, key)


def configured_callbacks(cfg: DictConfig) -> list[Callback]:
    """The callbacks the configuration asks for, in a fixed order."""
    section = cfg.callbacks
    found: list[Callback] = []
    if section.early_stopping:
        found.append(construct(EarlyStopping, plain(section.early_stopping), "callbacks.early_stopping"))
    if section.lr_monitor:
        found.append(LearningRateMonitor(logging_interval="epoch"))
    if section.swa:
        found.append(construct(StochasticWeightAveraging, plain(section.swa), "callbacks.swa"))
    found += [user_callback(spec, f"callbacks.extra[{n}]") for n, spec in enumerate(section.extra)]
    return found
