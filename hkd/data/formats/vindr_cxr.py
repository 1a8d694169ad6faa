"""VinDr-CXR: DICOM images at ``train/<image_id>.dicom``, and either layout of its labels:

* Kaggle (VinBigData): ``train.csv``, one row per reader's finding (``image_id, class_name,
  rad_id, x_min, y_min, x_max, y_max``; ``No finding`` has no box);
* PhysioNet (v1.0.0): ``annotations/annotations_train.csv`` (the same box rows) and
  ``annotations/image_labels_train.csv`` (per image and reader, one 0/1 column per global label,
  e.g. ``Pneumonia``, ``No finding``), whose labels count as findings without a box.

Three readers per image.

An image's class is the first entry of ``data.finding_map`` (finding substring -> class, in order)
that any reader's finding matches; the boxes of every reader whose finding maps to that class are
the relevant regions. Images whose findings map to no class are dropped with a count in the log.
The data carry no patient id: each image is its own group.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

from hkd.data.dicom import DICOM_SUFFIXES
from hkd.data.formats.source import DataSource
from hkd.data.formats.tables import corner_box, csv_rows, index_files, map_finding, number
from hkd.data.image_record import Record, Region
from hkd.errors import InputError

log = logging.getLogger(__name__)

# Pneumonia-like opacities vs no finding; other findings (cardiomegaly, nodules, ...) are dropped.
DEFAULT_FINDING_MAP = {"Consolidation": "opacity", "Infiltration": "opacity",
                       "Lung Opacity": "opacity", "No finding": "no_finding"}


Findings = dict[str, list[tuple[str | None, Region | None]]]  # image_id -> (class, box or None)


def read_box_rows(path: Path, table: dict, findings: Findings, sources: dict[str, str], hint: str) -> None:
    """Rows ``image_id, class_name, rad_id, x_min, y_min, x_max, y_max`` (an empty box: no box)."""
    columns = {"image_id", "class_name", "rad_id", "x_min", "y_min", "x_max", "y_max"}
    for line, row in csv_rows(path, columns, hint):
        where = f"{path} row {line}"
        sources.setdefault(row["image_id"], where)
        label = map_finding(row["class_name"], table)
        region = None
        if row["x_min"] and label is not None:
            region = corner_box(*(number(row, key, where) for key in ("x_min", "y_min", "x_max", "y_max")),
                                where=where)
        findings[row["image_id"]].append((label, region))


def read_image_labels(path: Path, table: dict, findings: Findings, sources: dict[str, str]) -> None:
    """PhysioNet's global labels: every column that a reader set to 1 is a finding without a box."""
    for line, row in csv_rows(path, {"image_id"}, "the PhysioNet layout needs image_labels_train.csv"):
        where = f"{path} row {line}"
        sources.setdefault(row["image_id"], where)
        for column, value in row.items():
            if column in ("image_id", "rad_id", "rad_ID") or value in ("", "0", "0.0"):
                continue
            if value not in ("1", "1.0"):
                raise InputError(f"{where}: column '{column}' must be 0 or 1, got '{value}'")
            label = map_finding(column, table)
            if label is not None:
                findings[row["image_id"]].append((label, None))


def read_vindr_cxr(source: DataSource, seed: int = 0) -> tuple[list[Record], list[str]]:
    """The records and classes of data.root (``seed`` is unused: the release fixes its images)."""
    root = Path(source.root)
    table = dict(source.finding_map) if source.finding_map else DEFAULT_FINDING_MAP
    order = list(dict.fromkeys(table.values()))
    findings: Findings = defaultdict(list)
    sources: dict[str, str] = {}
    kaggle, physionet = root / "train.csv", root / "annotations" / "annotations_train.csv"
    if kaggle.is_file() or not physionet.is_file():
        read_box_rows(kaggle, table, findings, sources, "data.root must be the VinDr-CXR folder (Kaggle's "
                                                        "train.csv or PhysioNet's annotations/)")
    else:
        read_box_rows(physionet, table, findings, sources, "the PhysioNet layout's box table")
        read_image_labels(root / "annotations" / "image_labels_train.csv", table, findings, sources)
    files = index_files(root / "train", DICOM_SUFFIXES)
    records, dropped = [], Counter()
    for image_id, marks in findings.items():
        present = {label for label, _ in marks if label is not None}
        label = next((name for name in order if name in present), None)
        if label is None:
            dropped["no mapped finding"] += 1
            continue
        if image_id not in files:
            raise InputError(f"{sources[image_id]}: no DICOM file {image_id}.dicom under {root / 'train'}")
        regions = [region for mark, region in marks if mark == label and region is not None]
        records.append(Record(path=files[image_id], label=label, patient_id=image_id,
                              relevant=regions, source=sources[image_id]))
    if dropped:
        log.warning("vindr-cxr: dropped %d images whose findings map to no class", sum(dropped.values()))
    return records, list(source.classes) if source.classes else order
