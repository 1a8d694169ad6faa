"""K-fold splits: grouped by patient, stratified by class in test *and* validation, and a warning
that names a class missing from a split."""

import logging
from pathlib import Path

import pytest

from hkd.data.image_record import Record
from hkd.data.splits import check_splits, kfold_splits

COUNTS = {"covid19": 60, "viral": 10, "bacterial": 8, "fungal": 6}  # patients per class, like the real set


def records(counts=COUNTS, images_per_patient=2):
    return [Record(Path(f"{label}_{p}_{i}.png"), label, f"{label}-{p}")
            for label, n in counts.items() for p in range(n) for i in range(images_per_patient)]


@pytest.mark.parametrize("fold", range(5))
def test_every_class_in_every_split_and_no_patient_in_two(fold):
    data = records()
    splits = kfold_splits(data, folds=5, fold=fold, val_fraction=0.15, seed=3)
    for split in ("train", "val", "test"):
        assert {r.label for r, s in zip(data, splits) if s == split} == set(COUNTS), split
    by_patient = {}
    for record, split in zip(data, splits):
        by_patient.setdefault(record.patient_id, set()).add(split)
    assert all(len(s) == 1 for s in by_patient.values())
    val = [r for r, s in zip(data, splits) if s == "val"]
    assert 0.1 < len(val) / len(data) < 0.25  # about 15 % of the remaining 80 %


def test_the_folds_partition_the_patients_and_repeat_with_the_seed():
    data = records()
    tests = [{r.patient_id for r, s in zip(data, kfold_splits(data, 5, k, 0.15, 3)) if s == "test"}
             for k in range(5)]
    assert sum(len(t) for t in tests) == len({r.patient_id for r in data})
    assert kfold_splits(data, 5, 2, 0.15, 3) == kfold_splits(data, 5, 2, 0.15, 3)
    assert kfold_splits(data, 5, 2, 0.15, 3) != kfold_splits(data, 5, 2, 0.15, 4)


def test_a_class_missing_from_validation_or_test_is_named_in_a_warning(caplog):
    data = records({"common": 20, "rare": 2})
    splits = ["train" if r.label == "rare" else s for r, s in zip(data, kfold_splits(data, 5, 0, 0.15, 0))]
    with caplog.at_level(logging.WARNING):
        check_splits(data, splits, ["common", "rare"])  # trainable: a warning, not an error
    assert "class(es) rare have no sample in the val split" in caplog.text
    assert "class(es) rare have no sample in the test split" in caplog.text


def test_a_training_subset_keeps_whole_patients_and_each_class_share():
    from collections import Counter

    from hkd.data.splits import UNUSED, dataset_splits

    records = [Record(Path(f"{label}{i}.png"), label, f"{label}-p{i // 2}")  # two images per patient
               for label, n in (("a", 120), ("b", 60), ("c", 20)) for i in range(n)]
    full = dataset_splits(records, ["a", "b", "c"], 0, val_fraction=0.15, test_fraction=0.2)
    sub = dataset_splits(records, ["a", "b", "c"], 0, val_fraction=0.15, test_fraction=0.2, train_size=50)
    assert [s for s in sub if s != UNUSED and s != "train"] == [s for s in full if s != "train"]  # val, test
    kept = [r for r, s in zip(records, sub) if s == "train"]
    n_train = full.count("train")
    assert 50 <= len(kept) <= 50 + 3 * 2  # whole patients: each class may take one patient more
    shares = Counter(r.label for r in kept)
    full_shares = Counter(r.label for r, s in zip(records, full) if s == "train")
    for label in ("a", "b", "c"):
        assert abs(shares[label] - 50 * full_shares[label] / n_train) <= 2
    patients = {r.patient_id for r in kept}
    assert all(s == "train" for r, s in zip(records, sub) if r.patient_id in patients)  # no patient split
    again = dataset_splits(records, ["a", "b", "c"], 0, val_fraction=0.15, test_fraction=0.2, train_size=50)
    other = dataset_splits(records, ["a", "b", "c"], 1, val_fraction=0.15, test_fraction=0.2, train_size=50)
    assert again == sub and other != sub


def test_the_datamodule_trains_on_the_subset_only(tiny):
    from hkd.run.build import build_datamodule

    datamodule = build_datamodule(tiny("data.train_size=20"))
    datamodule.setup()
    assert len(datamodule.datasets["train"]) == datamodule.split_summary()["train"]["images"] == 20
    assert len(datamodule.datasets["val"]) == 16 and len(datamodule.datasets["test"]) == 16  # as without it
