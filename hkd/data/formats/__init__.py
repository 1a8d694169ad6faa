"""From ``data.format`` to a list of records and the class names. Each layout is one module that
registers its loader in ``FORMATS``; every module of this package is imported here, so a new
layout is one new file."""

from __future__ import annotations

from hkd.data.formats.registry import FORMATS
from hkd.data.formats.source import DataSource
from hkd.data.image_record import Record
from hkd.errors import InputError
from hkd.registry import import_submodules

import_submodules(__name__, __path__)

__all__ = ["FORMATS", "DataSource", "load_records"]


def load_records(source: DataSource, seed: int) -> tuple[list[Record], list[str]]:
    """The records of the data set and its ordered class names."""
    records, classes = FORMATS[source.format](source, seed)
    for record in records:
        if record.label not in classes:
            raise InputError(f"{record.source}: label '{record.label}' is not one of the classes "
                             f"{', '.join(classes)} (set data.classes)")
    return records, classes
