"""SIIM-FISABIO-RSNA COVID-19 (Kaggle ``siim-covid19-detection``): DICOM images at
``train/<study>/<series>/<image_id>.dcm``, ``train_study_level.csv`` (one-hot appearance classes
per study) and ``train_image_level.csv`` (opacity boxes per image, the relevant regions).

The classes are radiological appearances, not aetiologies. The CSVs carry no patient id, so the
study is the grouping unit for splits (all images of a study stay together).
"""

from __future__ import annotations

import ast
from pathlib import Path

from hkd.data.dicom import DICOM_SUFFIXES
from hkd.data.formats.source import DataSource
from hkd.data.formats.tables import csv_rows, index_files, number, sized_box
from hkd.data.image_record import Record, Region
from hkd.errors import InputError

STUDY_COLUMNS = {"Negative for Pneumonia": "negative", "Typical Appearance": "typical",
                 "Indeterminate Appearance": "indeterminate", "Atypical Appearance": "atypical"}


def read_siim_covid(source: DataSource, seed: int = 0) -> tuple[list[Record], list[str]]:
    """The records and classes of data.root (``seed`` is unused: the release fixes its images)."""
    root = Path(source.root)
    hint = "data.root must be the Kaggle siim-covid19-detection folder"
    study_csv = root / "train_study_level.csv"
    labels: dict[str, str] = {}
    for line, row in csv_rows(study_csv, {"id", *STUDY_COLUMNS}, hint):
        where = f"{study_csv} row {line}"
        hot = [name for column, name in STUDY_COLUMNS.items() if number(row, column, where) == 1]
        if len(hot) != 1:
            raise InputError(f"{where}: expected exactly one class column set to 1, found {len(hot)}")
        labels[row["id"].removesuffix("_study")] = hot[0]
    files = index_files(root / "train", DICOM_SUFFIXES)
    image_csv = root / "train_image_level.csv"
    records = []
    for line, row in csv_rows(image_csv, {"id", "boxes", "StudyInstanceUID"}, hint):
        where = f"{image_csv} row {line}"
        study, image_id = row["StudyInstanceUID"], row["id"].removesuffix("_image")
        if study not in labels:
            raise InputError(f"{where}: study {study} is not in {study_csv.name}")
        if image_id not in files:
            raise InputError(f"{where}: no DICOM file {image_id}.dcm under {root / 'train'}")
        records.append(Record(path=files[image_id], label=labels[study], patient_id=study,
                              relevant=parse_boxes(row["boxes"], where), source=where))
    return records, list(source.classes) if source.classes else list(STUDY_COLUMNS.values())


def parse_boxes(text: str, where: str) -> list[Region]:
    """The ``boxes`` column: a Python-literal list of {'x', 'y', 'width', 'height'}, or empty."""
    if text in ("", "nan", "NaN", "[]"):
        return []
    try:
        boxes = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise InputError(f"{where}: column 'boxes' is not a list of boxes: {error}") from None
    if not isinstance(boxes, list) or not all(isinstance(box, dict) for box in boxes):
        raise InputError(f"{where}: column 'boxes' must be a list of {{'x', 'y', 'width', 'height'}}")
    return [sized_box(*(number(box, key, where) for key in ("x", "y", "width", "height")), where=where)
            for box in boxes]
