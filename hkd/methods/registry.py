"""``method.name`` -> a built method."""

from __future__ import annotations

from omegaconf import DictConfig

from hkd.methods.base import METHODS, Method


def build_method(cfg: DictConfig, num_classes: int, in_chans: int) -> Method:
    """The configured method, ready to hand to ``ClassifierModule``."""
    return METHODS[cfg.method.name].from_config(cfg, num_classes, in_chans)
