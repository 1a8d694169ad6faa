"""The Kermany pediatric X-ray loader: a tiny copy in the release's exact layout, bad names, the
class map, and the shared copy's documented counts (when ../shared is present)."""

import numpy as np
import pytest
from conftest import REPO, write_png

from hkd.config import load_config
from hkd.data.formats import load_records
from hkd.errors import InputError
from hkd.run.build import build_datamodule, data_source

SHARED_KERMANY = REPO.parent / "shared" / "datasets" / "kermany-pediatric-cxr"


def tiny_release(root, val_folder=False):
    names = {
        "NORMAL": ["IM-0115-0001.jpeg", "IM-0115-0002.jpeg", "NORMAL2-IM-0115-0001.jpeg",
                   "IM-0117-0001.jpeg", "NORMAL2-IM-0400-0001.jpeg", "IM-0119-0001-0002.jpeg"],
        "PNEUMONIA": ["person1_bacteria_1.jpeg", "person1_bacteria_2.jpeg", "person2_virus_3.jpeg",
                      "person3_virus_6.jpeg", "person4_bacteria_9.jpeg", "person5_virus_11_1.jpeg",
                      "person6_bacteria_12.jpeg", "person7_virus_13.jpeg"],
    }
    folders = ("train", "test", "val") if val_folder else ("train", "test")
    for folder in folders:
        for kind, files in names.items():
            for name in files:
                write_png(root / "chest_xray" / folder / kind / name, np.full((24, 24), 90, np.uint8))  # JPEG
    return root


def config(root, *overrides):
    return load_config("quickstart", ["data.format=kermany", f"data.root={root}",
                                      f"data.cache_dir={root / 'cache'}", *overrides])


def test_classes_patients_and_the_release_split(tmp_path):
    root = tiny_release(tmp_path)
    records, classes = load_records(data_source(config(root)), 0)
    assert classes == ["normal", "bacterial", "viral"]
    by_name = {(r.path.parent.parent.name, r.path.name): r for r in records}
    person1 = by_name[("train", "person1_bacteria_2.jpeg")]
    assert person1.label == "bacterial" and person1.patient_id == "train/person1"
    assert by_name[("test", "person5_virus_11_1.jpeg")].label == "viral"
    assert by_name[("train", "IM-0115-0002.jpeg")].patient_id == "train/IM-0115"
    other_numbering = by_name[("train", "NORMAL2-IM-0115-0001.jpeg")]
    assert other_numbering.patient_id == "train/NORMAL2-IM-0115"
    assert {r.split for r in records if r.path.parent.parent.name == "test"} == {"test"}
    train_splits = {r.patient_id: set() for r in records if r.split != "test"}
    for record in records:
        if record.split != "test":
            train_splits[record.patient_id].add(record.split)
    assert all(len(s) == 1 for s in train_splits.values())  # no patient in train and val
    assert {r.split for r in records if r.split != "test"} == {"train", "val"}
    assert not any(r.has_prior for r in records)  # no region annotations in this release


def test_normal_vs_pneumonia_map_kaggle_val_folder_and_a_bad_name(tmp_path):
    root = tiny_release(tmp_path, val_folder=True)
    finding_map = "data.finding_map={normal: normal, bacterial: pneumonia, viral: pneumonia}"
    records, classes = load_records(data_source(config(root, finding_map)), 0)
    assert classes == ["normal", "pneumonia"] and {r.label for r in records} == {"normal", "pneumonia"}
    assert len(records) == 3 * 14  # train, test and the Kaggle copy's val folder
    assert {r.split for r in records if r.path.parent.parent.name == "val"} <= {"train", "val"}
    odd = root / "chest_xray" / "train" / "PNEUMONIA" / "person8_fungus_1.jpeg"
    write_png(odd, np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="person8_fungus_1.jpeg: not a Kermany file name"):
        load_records(data_source(config(root)), 0)


@pytest.mark.skipif(not SHARED_KERMANY.is_dir(), reason="../shared/datasets/kermany-pediatric-cxr is absent")
def test_shared_copy_has_the_documented_counts(tmp_path):
    datamodule = build_datamodule(config(SHARED_KERMANY, f"data.cache_dir={tmp_path}"))
    counts = {}
    for record in datamodule.records:
        folder = record.path.parent.parent.name
        counts[(folder, record.label)] = counts.get((folder, record.label), 0) + 1
    assert counts == {("train", "normal"): 1341, ("train", "bacterial"): 2530, ("train", "viral"): 1345,
                      ("test", "normal"): 234, ("test", "bacterial"): 242, ("test", "viral"): 148}
    assert datamodule.splits.count("test") == 624 and 700 < datamodule.splits.count("val") < 900
