"""From ``data.format`` to a list of records and the class names. Each layout is one module with
its loader, named in ``FORMATS`` (``hkd.config.choices``) and imported when that format is first used."""

from __future__ import annotations

from hkd.config.choices import FORMATS
from hkd.data.formats.source import DataSource
from hkd.data.image_record import Record
from hkd.errors import InputError

__all__ = ["FORMATS", "DataSource", "load_records"]


def load_records(source: DataSource, seed: int) -> tuple[list[Record], list[str]]:
    """The records of the data set and its ordered class names."""
    records, classes = FORMATS[source.format](source, seed)
    for record in records:
        if record.label not in classes:
            raise InputError(f"{record.source}: label '{record.label}' is not one of the classes "
                             f"{', '.join(classes)} (set data.classes)")
    return records, classes
