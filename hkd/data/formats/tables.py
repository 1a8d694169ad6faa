"""Small helpers the public data-set loaders share: CSV rows with checked columns, finding-to-class
tables, box parsing and an index of image files by name."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

from hkd.data.image_record import Region
from hkd.errors import InputError


def csv_rows(path: Path, required: set[str], hint: str = "") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of a CSV file whose header must hold ``required``."""
    if not path.is_file():
        raise InputError(f"{path} is missing{': ' + hint if hint else ''}")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise InputError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        try:
            for line, row in enumerate(reader, start=2):
                yield line, {key: (value or "").strip() for key, value in row.items() if key}
        except csv.Error as error:
            raise InputError(f"{path}: not a readable CSV file: {error}") from error


def number(row: Mapping[str, object], key: str, where: str) -> float:
    try:
        value = float(row[key])
    except (KeyError, ValueError):
        raise InputError(f"{where}: column '{key}' must be a number, got {row.get(key)!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: column '{key}' is {value}")
    return value


def map_finding(finding: str, table: Mapping[str, str]) -> str | None:
    """The class of the first ``table`` pattern found in ``finding`` (case-insensitive), or None."""
    lowered = finding.lower()
    for pattern, label in table.items():
        if pattern.lower() in lowered:
            return label
    return None


def sized_box(x: float, y: float, width: float, height: float, where: str) -> Region:
    """A box given by its top-left corner and size; an empty box is an error."""
    if width <= 0 or height <= 0:
        raise InputError(f"{where}: box has no area (width {width}, height {height})")
    return Region.from_box(x, y, width, height)


def corner_box(x0: float, y0: float, x1: float, y1: float, where: str) -> Region:
    """A box given by two corners; an empty or inverted box is an error."""
    return sized_box(x0, y0, x1 - x0, y1 - y0, where)


def index_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Every file under ``folder`` with one of the suffixes, by file stem."""
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    return {path.stem: path.resolve() for path in folder.rglob("*")
            if path.suffix.lower() in suffixes and path.is_file()}
