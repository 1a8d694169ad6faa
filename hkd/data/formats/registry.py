"""``data.format`` -> the loader of that layout: ``loader(data, seed) -> (records, class names)``."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig

from hkd.data.image_record import Record
from hkd.registry import Registry

Loader = Callable[[DictConfig, int], tuple[list[Record], list[str]]]

FORMATS: Registry[Loader] = Registry("data.format")
