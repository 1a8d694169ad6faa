"""``data.format`` -> the loader of that layout: ``loader(source, seed) -> (records, class names)``."""

from __future__ import annotations

from collections.abc import Callable

from hkd.data.formats.source import DataSource
from hkd.data.image_record import Record
from hkd.registry import Registry

Loader = Callable[[DataSource, int], tuple[list[Record], list[str]]]

FORMATS: Registry[Loader] = Registry("data.format")
