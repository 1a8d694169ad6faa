"""What an image *is*, independent of its row: its file's path relative to the data set's folder
and a hash of its content. IMIL's edits and a clinician's marks are bound to it, so a data set
re-exported in another row order, or an image replaced or deleted, can never move a mark onto
another patient's image. A run also records its data set's fingerprint (every image's name, class
and split), so a resume can say what changed and refuse a changed split."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hkd.data.image_record import Record

CHUNK = 1 << 20


def image_names(records: list[Record]) -> list[str]:
    """Each record's file relative to the folder all of them share (stable when the data set's
    folder moves); a file listed twice gets ``#2``, ``#3`` after its name."""
    paths = [str(Path(r.path).resolve()) for r in records]
    root = os.path.commonpath(paths) if len(paths) > 1 else str(Path(paths[0]).parent) if paths else ""
    if root in paths:  # a single file, or every record the same file
        root = str(Path(root).parent)
    seen: Counter[str] = Counter()
    names = []
    for path in paths:
        name = Path(os.path.relpath(path, root)).as_posix()
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(names: list[str], records: list[Record], splits: list[str], classes: list[str]) -> dict:
    """The data set as a run saw it: its classes and every row's image name, class and split."""
    rows = [[name, record.label, split] for name, record, split in zip(names, records, splits)]
    text = repr((classes, rows)).encode()
    return {"classes": list(classes), "rows": rows, "sha256": hashlib.sha256(text).hexdigest()}


@dataclass
class DataChange:
    """How the data set differs from the one a run started on (images named by their file)."""

    moved: int = 0  # images whose row number changed
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)  # "name: old -> new"
    resplit: list[str] = field(default_factory=list)  # "name: old -> new"
    classes: str = ""  # "old -> new" when the class list changed

    def __bool__(self) -> bool:
        return bool(self.moved or self.added or self.removed or self.relabelled or self.resplit
                    or self.classes)

    def describe(self, limit: int = 5) -> str:
        """One line per kind of change, naming the first ``limit`` images."""
        lines = []
        if self.classes:
            lines.append(f"classes changed: {self.classes}")
        if self.moved:
            lines.append(f"{self.moved} images are in other rows (matched again by their file)")
        for what, names in (("added", self.added), ("removed", self.removed),
                            ("with another class", self.relabelled), ("in another split", self.resplit)):
            if names:
                more = f" and {len(names) - limit} more" if len(names) > limit else ""
                lines.append(f"{len(names)} images {what}: {', '.join(names[:limit])}{more}")
        return "\n".join(lines)


def compare(before: dict, now: dict) -> DataChange:
    """What changed between two fingerprints."""
    change = DataChange()
    if before["classes"] != now["classes"]:
        change.classes = f"{before['classes']} -> {now['classes']}"
    old = {name: (row, label, split) for row, (name, label, split) in enumerate(before["rows"])}
    new = {name: (row, label, split) for row, (name, label, split) in enumerate(now["rows"])}
    change.added = [name for name in new if name not in old]
    change.removed = [name for name in old if name not in new]
    for name in old.keys() & new.keys():
        (row, label, split), (row_now, label_now, split_now) = old[name], new[name]
        change.moved += row != row_now
        if label != label_now:
            change.relabelled.append(f"{name}: {label} -> {label_now}")
        if split != split_now:
            change.resplit.append(f"{name}: {split} -> {split_now}")
    change.relabelled.sort()
    change.resplit.sort()
    return change
