"""VinDr-CXR (Kaggle VinBigData layout): DICOM images at ``train/<image_id>.dicom`` and
``train.csv`` with one row per reader's finding (``image_id, class_name, rad_id, x_min, y_min,
x_max, y_max``; ``No finding`` has no box). Three readers per image.

An image's class is the first entry of ``data.finding_map`` (finding substring -> class, in order)
that any reader's finding matches; the boxes of every reader whose finding maps to that class are
the relevant regions. Images whose findings map to no class are dropped with a count in the log.
The data carry no patient id: each image is its own group.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from pathlib import Path

from omegaconf import DictConfig

from hkd.data.dicom import DICOM_SUFFIXES
from hkd.data.formats.registry import FORMATS
from hkd.data.formats.tables import corner_box, csv_rows, index_files, map_finding, number
from hkd.data.image_record import Record, Region
from hkd.errors import InputError

log = logging.getLogger(__name__)

# Pneumonia-like opacities vs no finding; other findings (cardiomegaly, nodules, ...) are dropped.
DEFAULT_FINDING_MAP = {"Consolidation": "opacity", "Infiltration": "opacity",
                       "Lung Opacity": "opacity", "No finding": "no_finding"}


@FORMATS.register("vindr-cxr")
def read_vindr_cxr(data: DictConfig, seed: int = 0) -> tuple[list[Record], list[str]]:
    """The records and classes of data.root (``seed`` is unused: the release fixes its images)."""
    root = Path(data.root)
    table = dict(data.finding_map) if data.finding_map else DEFAULT_FINDING_MAP
    order = list(dict.fromkeys(table.values()))
    labels_csv = root / "train.csv"
    findings: dict[str, list[tuple[str | None, Region | None]]] = defaultdict(list)
    sources: dict[str, str] = {}
    columns = {"image_id", "class_name", "rad_id", "x_min", "y_min", "x_max", "y_max"}
    for line, row in csv_rows(labels_csv, columns, "data.root must be the VinDr-CXR (Kaggle) folder"):
        where = f"{labels_csv} row {line}"
        sources.setdefault(row["image_id"], where)
        label = map_finding(row["class_name"], table)
        region = None
        if row["x_min"] and label is not None:
            region = corner_box(*(number(row, key, where) for key in ("x_min", "y_min", "x_max", "y_max")),
                                where=where)
        findings[row["image_id"]].append((label, region))
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
    return records, list(data.classes) if data.classes else order
