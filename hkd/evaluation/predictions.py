"""Per-image predictions as a run leaves them: ``test_predictions.csv`` and ``val_predictions.csv``
in the run directory (and ``RUN_DIR/external/NAME/test_predictions.csv`` for ``hkd test``).

Columns: ``idx``, ``file``, ``patient_id``, ``label``, ``prediction``, ``p_CLASS`` (probabilities as
deployed, after any temperature), ``logit_CLASS`` (before it), ``relevance_mass`` and
``pointing_game`` (test only), then the image's metadata (``labels.csv`` columns, covid-chestxray's
sex / age / view, a DICOM header's PatientSex / PatientAge / ViewPosition) under their own names,
the columns ``hkd report --by`` groups by."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hkd.errors import InputError

FIXED_COLUMNS = ("idx", "file", "patient_id", "label", "prediction", "relevance_mass", "pointing_game")


def predictions_file(folder: str | Path, split: str) -> Path:
    return Path(folder) / f"{split}_predictions.csv"


def number(value: float) -> str:
    return "" if np.isnan(value) else f"{float(value):.6f}"


def prediction_rows(idx: np.ndarray, records: list, labels: np.ndarray, classes: list[str],
                    outputs: dict[str, np.ndarray], metadata: list[dict[str, str]]) -> list[dict]:
    """One CSV row per image: ``outputs`` holds ``probabilities`` and ``logits`` (N, K), and
    optionally ``relevance_mass`` / ``pointing_game``; ``metadata`` one dict per image."""
    keys = list(dict.fromkeys(key for entry in metadata for key in entry if key not in FIXED_COLUMNS))
    rows = []
    for n, i in enumerate(idx):
        probabilities = outputs["probabilities"][n]
        row = {"idx": int(i), "file": str(records[i].path), "patient_id": records[i].patient_id,
               "label": classes[int(labels[n])], "prediction": classes[int(np.argmax(probabilities))],
               **{f"p_{c}": f"{float(v):.9g}" for c, v in zip(classes, probabilities)},
               **{f"logit_{c}": f"{float(v):.7g}" for c, v in zip(classes, outputs["logits"][n])}}
        for key in ("relevance_mass", "pointing_game"):
            if key in outputs:
                row[key] = number(outputs[key][n])
        rows.append({**row, **{key: metadata[n].get(key, "") for key in keys}})
    return rows


@dataclass
class Predictions:
    """A predictions file read back: what every report and comparison works from."""

    path: Path
    classes: list[str]
    files: list[str]
    patients: list[str]
    labels: np.ndarray  # class index per image
    probabilities: np.ndarray  # (N, K) as deployed
    logits: np.ndarray | None  # (N, K) before any temperature; None in files made before hkd kept them
    metadata: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def read_predictions(path: str | Path) -> Predictions:
    """Read a predictions CSV; a missing column or an unknown class names the file and row."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} is missing: a run writes it when it tests (hkd train, hkd test)")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    classes = [c[2:] for c in columns if c.startswith("p_")]
    missing = [c for c in ("file", "label") if c not in columns]
    if missing or not classes:
        raise InputError(f"{path}: missing column(s) {', '.join(missing) or 'p_CLASS'}")
    has_logits = all(f"logit_{c}" in columns for c in classes)
    labels, probabilities, logits = [], [], []
    for line, row in enumerate(rows, start=2):
        if row["label"] not in classes:
            raise InputError(f"{path} row {line}: label {row['label']!r} is not one of {', '.join(classes)}")
        try:
            probabilities.append([float(row[f"p_{c}"]) for c in classes])
            if has_logits:
                logits.append([float(row[f"logit_{c}"]) for c in classes])
        except ValueError as error:
            raise InputError(f"{path} row {line}: not a number ({error})") from error
        labels.append(classes.index(row["label"]))
    extra = [c for c in columns if c not in FIXED_COLUMNS and not c.startswith(("p_", "logit_"))]
    k = len(classes)
    patients = [row.get("patient_id") or row["file"] for row in rows]
    files = [row["file"] for row in rows]
    return Predictions(path, classes, files, patients, np.array(labels, dtype=np.int64),
                       np.array(probabilities, dtype=np.float64).reshape(-1, k),
                       np.array(logits, dtype=np.float64).reshape(-1, k) if has_logits else None,
                       {c: [row[c] for row in rows] for c in extra})
