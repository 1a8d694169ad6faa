"""``method.name`` -> Method."""

from __future__ import annotations

from omegaconf import DictConfig

from hkd.methods.base import Method


def build_method(cfg: DictConfig, num_classes: int, in_chans: int, input_key: str = "image") -> Method:
    name = cfg.method.name
    if name == "baseline" or input_key == "roi":
        return Method(input_key)
    if name == "hkd":
        from hkd.methods.hkd import HKDStudent

        return HKDStudent(cfg, num_classes, in_chans)
    from hkd.methods.guided import GUIDED_METHODS

    return GUIDED_METHODS[name](cfg.method.weight)
