"""RSNA Pneumonia Detection (Kaggle ``rsna-pneumonia-detection-challenge``): DICOM images at
``stage_2_train_images/<patientId>.dcm`` and ``stage_2_train_labels.csv`` (one row per opacity box,
top-left ``x, y, width, height``; ``Target`` 0 with no box for negatives).

Classes: ``normal`` / ``not_normal`` / ``opacity`` from ``stage_2_detailed_class_info.csv`` when
it is there, else ``no_opacity`` / ``opacity`` from ``Target``. The opacity boxes are the relevant
regions. One image per patient.
"""

from __future__ import annotations

from pathlib import Path

from hkd.data.formats.source import DataSource
from hkd.data.formats.tables import csv_rows, number, sized_box
from hkd.data.image_record import Record, Region
from hkd.errors import InputError

DETAILED_CLASSES = {"Normal": "normal", "No Lung Opacity / Not Normal": "not_normal",
                    "Lung Opacity": "opacity"}


def read_rsna_pneumonia(source: DataSource, seed: int = 0) -> tuple[list[Record], list[str]]:
    """The records and classes of data.root (``seed`` is unused: the release fixes its images)."""
    root = Path(source.root)
    hint = "data.root must be the Kaggle rsna-pneumonia-detection-challenge folder"
    labels_csv = root / "stage_2_train_labels.csv"
    boxes: dict[str, list[Region]] = {}
    targets: dict[str, str] = {}
    sources: dict[str, str] = {}
    for line, row in csv_rows(labels_csv, {"patientId", "x", "y", "width", "height", "Target"}, hint):
        where = f"{labels_csv} row {line}"
        patient = row["patientId"]
        target = row["Target"]
        if target not in ("0", "1"):
            raise InputError(f"{where}: column 'Target' must be 0 or 1, got {target!r}")
        sources.setdefault(patient, where)
        boxes.setdefault(patient, [])
        targets[patient] = "opacity" if target == "1" else targets.get(patient, "no_opacity")
        if target == "1":
            x, y, width, height = (number(row, key, where) for key in ("x", "y", "width", "height"))
            boxes[patient].append(sized_box(x, y, width, height, where))
    classes = ["no_opacity", "opacity"]
    detailed = root / "stage_2_detailed_class_info.csv"
    if detailed.is_file():
        classes = list(DETAILED_CLASSES.values())
        for line, row in csv_rows(detailed, {"patientId", "class"}):
            if row["class"] not in DETAILED_CLASSES:
                raise InputError(f"{detailed} row {line}: class {row['class']!r} is not one of "
                                f"{', '.join(DETAILED_CLASSES)}")
            if row["patientId"] in targets:
                targets[row["patientId"]] = DETAILED_CLASSES[row["class"]]
    images = root / "stage_2_train_images"
    records = []
    for patient, label in targets.items():
        path = images / f"{patient}.dcm"
        if not path.is_file():
            raise InputError(f"{sources[patient]}: image file {path} does not exist")
        records.append(Record(path=path.resolve(), label=label, patient_id=patient,
                              relevant=boxes[patient], source=sources[patient]))
    return records, list(source.classes) if source.classes else classes
