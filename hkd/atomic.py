"""Atomic file writes: a reader never sees a half-written file, and a failed write
leaves the previous version in place."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` only if it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, f"could not write {path}: {error.strerror}; "
                          "the previous version (if any) is unchanged") from error
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_png(path: str | Path, image: Any) -> Path:
    """A PIL image as a PNG file."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def atomic_write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Rows of dicts as a CSV file with a header (the first row's keys)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, text.getvalue())


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def append_json_line(path: str | Path, record: Any) -> None:
    """Append ``record`` as one JSON line with a single ``write`` on an ``O_APPEND`` file, then
    fsync: earlier lines are never rewritten, and a reader never sees half a line."""
    path = Path(path)
    line = (json.dumps(record, sort_keys=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(28, f"could not append to {path}: only {written} of {len(line)} bytes written")
        os.fsync(fd)
    except OSError as error:
        raise OSError(error.errno, f"could not write {path}: {error.strerror}") from error
    finally:
        os.close(fd)


def atomic_folder(folder: str | Path, fill: Callable[[Path], None], done: str) -> Path:
    """Build a folder all or nothing: ``fill(tmp)`` writes into a hidden sibling, which is renamed
    to ``folder`` once it succeeded. ``done`` names the file whose presence marks a finished
    folder: one that has it is returned as is (also when another process finished it first)."""
    folder = Path(folder)
    if (folder / done).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        fill(tmp)
        if (folder / done).is_file():  # another process finished the same folder meanwhile: keep
            return folder              # theirs, which readers may already be using
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished leftover
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same folder first
            if not (folder / done).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
