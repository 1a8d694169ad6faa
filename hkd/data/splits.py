"""Patient-grouped, class-stratified splits, deterministic from the seed."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import numpy as np

from hkd.data.image_record import SPLITS, Record
from hkd.errors import InputError

log = logging.getLogger(__name__)


def patient_groups(records: list[Record]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        groups[record.patient_id].append(index)
    return dict(groups)


def _majority_label(records: list[Record], indices: list[int]) -> str:
    return Counter(records[i].label for i in indices).most_common(1)[0][0]


def patients_by_class(records: list[Record], groups: dict[str, list[int]],
                      rng: np.random.Generator) -> dict[str, list[str]]:
    """Each class's patients (by their majority class), in a seeded random order."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for patient, indices in sorted(groups.items()):
        by_class[_majority_label(records, indices)].append(patient)
    for label in sorted(by_class):
        rng.shuffle(by_class[label])
    return dict(by_class)


def assign_splits(records: list[Record], val_fraction: float, test_fraction: float,
                  seed: int) -> list[str]:
    """The split of every record: the ``split`` column where given, else a seeded
    patient-grouped split stratified by each patient's majority class."""
    given = [record.split for record in records]
    if all(split is not None for split in given):
        return list(given)  # type: ignore[arg-type]
    if any(split is not None for split in given):
        missing = next(r.source for r in records if r.split is None)
        raise InputError(f"{missing}: 'split' is empty; give it for every row or for none")
    groups = patient_groups(records)
    by_class = patients_by_class(records, groups, np.random.default_rng(seed))
    splits = [""] * len(records)
    for label in sorted(by_class):
        patients = by_class[label]
        n = len(patients)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:  # every split gets a patient of each class that has enough of them
            n_test, n_val = max(n_test, 1 if test_fraction > 0 else 0), \
                max(n_val, 1 if val_fraction > 0 else 0)
        for position, patient in enumerate(patients):
            split = "test" if position < n_test else "val" if position < n_test + n_val else "train"
            for index in groups[patient]:
                splits[index] = split
    return splits


def kfold_splits(records: list[Record], folds: int, fold: int, val_fraction: float,
                 seed: int) -> list[str]:
    """Fold ``fold`` of a patient-grouped, class-stratified K-fold: it is the test split; a seeded
    share of each class's remaining patients (at least one where a class has two) is validation."""
    if not 0 <= fold < folds:
        raise InputError(f"data.fold={fold} must be in [0, data.folds={folds})")
    groups = patient_groups(records)
    by_class = patients_by_class(records, groups, np.random.default_rng(seed))
    fold_of: dict[str, int] = {}
    offset = 0
    for label in sorted(by_class):
        for position, patient in enumerate(by_class[label]):
            fold_of[patient] = (position + offset) % folds
        offset += len(by_class[label])
    val: set[str] = set()
    for label in sorted(by_class):  # stratified: a share of each class's remaining patients
        rest = [p for p in by_class[label] if fold_of[p] != fold]
        n_val = int(round(len(rest) * val_fraction))
        if len(rest) >= 2 and val_fraction > 0:
            n_val = max(n_val, 1)  # a rare class keeps a patient in validation when it can
        val.update(rest[:n_val])
    splits = [""] * len(records)
    for patient, indices in groups.items():
        split = "test" if fold_of[patient] == fold else "val" if patient in val else "train"
        for index in indices:
            splits[index] = split
    return splits


UNUSED = "unused"  # a training image left out by data.train_size


def training_subset(records: list[Record], splits: list[str], size: int, seed: int) -> list[str]:
    """Keep about ``size`` training images — whole patients, each class its share of the training
    split, drawn from the seed — and mark the others ``unused``; validation and test stay."""
    train = [i for i, split in enumerate(splits) if split == "train"]
    if size >= len(train):
        return list(splits)
    groups = patient_groups([records[i] for i in train])
    by_class = patients_by_class([records[i] for i in train], groups, np.random.default_rng([seed, 31]))
    counts = Counter(records[i].label for i in train)
    kept: set[int] = set()
    for label in sorted(by_class):
        target, taken = round(size * counts[label] / len(train)), 0
        for patient in by_class[label]:
            if taken >= max(target, 1):
                break
            kept.update(train[position] for position in groups[patient])
            taken += len(groups[patient])
    return [UNUSED if split == "train" and i not in kept else split for i, split in enumerate(splits)]


def dataset_splits(records: list[Record], classes: list[str], seed: int, *, val_fraction: float,
                   test_fraction: float, folds: int = 0, fold: int = 0,
                   train_size: int | None = None) -> list[str]:
    """Every record's split, checked: fold ``fold`` of a patient-grouped ``folds``-fold split, or
    the records' own split column with the missing ones drawn from the seed; with ``train_size``
    only a seeded subset of the training images is used (``training_subset``)."""
    if folds:
        splits = kfold_splits(records, folds, fold, val_fraction, seed)
    else:
        splits = assign_splits(records, val_fraction, test_fraction, seed)
    if train_size is not None:
        splits = training_subset(records, splits, int(train_size), seed)
    check_splits(records, splits, classes, test_required=bool(folds) or test_fraction > 0)
    return splits


def check_splits(records: list[Record], splits: list[str], classes: list[str],
                 test_required: bool = True) -> None:
    """Every split has images (the test split may be empty when ``data.test_fraction=0`` asks for
    a train / valid protocol) and every class is in the training split."""
    for split in SPLITS:
        if split not in splits and (split != "test" or test_required):
            raise InputError(f"the {split} split is empty (check the 'split' column or "
                            "data.val_fraction / data.test_fraction; data.test_fraction=0 runs without a "
                            "test split)")
    train_labels = {r.label for r, s in zip(records, splits) if s == "train"}
    missing = [c for c in classes if c not in train_labels]
    if missing:
        raise InputError(f"class(es) {', '.join(missing)} have no sample in the train split")
    for split in ("val", "test"):
        present = {r.label for r, s in zip(records, splits) if s == split}
        absent = [c for c in classes if c not in present]
        if absent:
            log.warning("class(es) %s have no sample in the %s split: its metrics leave them out",
                        ", ".join(absent), split)
    patients: dict[str, set[str]] = defaultdict(set)
    for record, split in zip(records, splits):
        patients[record.patient_id].add(split)
    straddling = [p for p, s in patients.items() if len(s) > 1]
    if straddling:
        raise InputError(f"patient(s) {', '.join(straddling[:5])} appear in more than one split")
