"""The pediatric chest X-rays of Kermany et al. 2018 (``data.format=kermany``), in the public
release's layout (also its Kaggle copy): ``chest_xray/{train,test}[/val]/{NORMAL,PNEUMONIA}/*.jpeg``.

* Class from the folder and the file name: ``normal``; ``bacterial`` (``person<P>_bacteria_<N>``)
  or ``viral`` (``person<P>_virus_<N>``) pneumonia. ``data.finding_map`` maps these names to other
  classes (e.g. ``{bacterial: pneumonia, viral: pneumonia}`` for normal vs pneumonia).
* Patient from the file name: ``person<P>`` for pneumonia, ``IM-<P>`` and ``NORMAL2-IM-<P>`` (two
  numberings) for normal images. The release's folders number their patients separately, so the
  patient id carries its folder (``train/person12`` and ``test/person12`` are different children:
  our assumption, as the release does not say).
* Splits: the release's ``test/`` is the test split; ``train/`` (with the Kaggle copy's 16-image
  ``val/``) is split by patient, stratified by class, into train and validation
  (``data.val_fraction``, from the seed). ``data.folds=K`` instead cross-validates over all images.
"""

from __future__ import annotations

import re
from pathlib import Path

from hkd.data.formats.source import DataSource
from hkd.data.formats.tables import map_finding
from hkd.data.image_record import Record
from hkd.data.splits import assign_splits
from hkd.errors import InputError

CLASSES = ("normal", "bacterial", "viral")
PNEUMONIA = re.compile(r"(person\d+)_(bacteria|virus)_\d+(_\d+)?\.jpe?g", re.IGNORECASE)
NORMAL = re.compile(r"((?:NORMAL2-)?IM-\d+)-\d+(-\d+)?\.jpe?g", re.IGNORECASE)
FOLDERS = {"train": "train", "val": "train", "test": "test"}  # release folder -> our split


def release_root(root: Path) -> Path:
    """``data.root`` may be the folder holding ``chest_xray/`` or ``chest_xray/`` itself."""
    for candidate in (root / "chest_xray", root):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise InputError(f"data.root={root}: no chest_xray/train and chest_xray/test folders (the Kermany "
                     "release's layout)")


def parse_name(path: Path, folder: str) -> tuple[str, str]:
    """(class, patient id) from a file's folder and name."""
    if path.parent.name.upper() == "NORMAL":
        found = NORMAL.fullmatch(path.name)
        if found:
            return "normal", f"{folder}/{found.group(1).upper()}"
    elif path.parent.name.upper() == "PNEUMONIA":
        found = PNEUMONIA.fullmatch(path.name)
        if found:
            return ("bacterial" if found.group(2).lower() == "bacteria" else "viral"), \
                f"{folder}/{found.group(1).lower()}"
    raise InputError(f"{path}: not a Kermany file name (NORMAL/IM-<P>-<N>.jpeg, "
                     "NORMAL/NORMAL2-IM-<P>-<N>.jpeg or PNEUMONIA/person<P>_bacteria|virus_<N>.jpeg)")


def read_kermany(source: DataSource, seed: int) -> tuple[list[Record], list[str]]:
    root = release_root(Path(source.root))
    table = dict(source.finding_map) if source.finding_map else {name: name for name in CLASSES}
    records = []
    for folder, split in FOLDERS.items():
        for path in sorted((root / folder).glob("*/*")):
            if path.suffix.lower() not in (".jpeg", ".jpg"):
                continue
            finding, patient = parse_name(path, folder)
            label = map_finding(finding, table)
            if label is None:
                raise InputError(f"{path}: class '{finding}' is not in data.finding_map {table}")
            records.append(Record(path=path.resolve(), label=label, patient_id=patient, split=split,
                                  source=str(path)))
    if not records:
        raise InputError(f"{root}: no .jpeg images under train/ and test/")
    training = [r for r in records if r.split == "train"]
    for record, split in zip(training, assign_splits(
            [Record(r.path, r.label, r.patient_id) for r in training], source.val_fraction, 0.0, seed)):
        record.split = split
    mapped = (map_finding(name, table) for name in CLASSES)
    classes = list(source.classes) if source.classes else list(dict.fromkeys(c for c in mapped if c))
    return records, classes
