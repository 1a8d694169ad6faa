"""The synthetic benchmark's generator: determinism, the shortcut's bias, annotations."""

import csv
import json
import math

import numpy as np
import pytest

from hkd.data.formats.folder import read_folder
from hkd.data.formats.source import SyntheticSpec
from hkd.data.formats.synthetic import TAG_POSITIONS, ensure_synthetic, render_sample
from hkd.errors import ConfigError, InputError

SPEC = SyntheticSpec(seed=3, n_train=200, n_val=20, n_test=200, size=48, shortcut_bias=0.9)


def _rows(root):
    with open(root / "labels.csv") as handle:
        return list(csv.DictReader(handle))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = ensure_synthetic(SPEC, tmp_path / "a")
    b = ensure_synthetic(SPEC, tmp_path / "b")
    first = (a / "images/00007.png").read_bytes()
    assert first == (b / "images/00007.png").read_bytes()
    other = SyntheticSpec(**{**SPEC.__dict__, "seed": 4})
    c = ensure_synthetic(other, tmp_path / "c")
    assert (c / "images/00007.png").read_bytes() != first


def test_shortcut_agrees_with_bias_in_train_and_is_random_in_test(tmp_path):
    rows = _rows(ensure_synthetic(SPEC, tmp_path))
    agree = {split: np.mean([r["label"] == r["shortcut"] for r in rows if r["split"] == split])
             for split in ("train", "test")}
    assert 0.82 <= agree["train"] <= 0.97
    assert agree["test"] < 0.4  # 1/4 expected
    counts = np.unique([r["label"] for r in rows if r["split"] == "train"], return_counts=True)[1]
    assert counts.max() - counts.min() <= 1  # balanced classes


def test_a_shortcut_free_validation_split_changes_nothing_else(tmp_path):
    spec = SyntheticSpec(**{**SPEC.__dict__, "n_val": 200})
    biased = _rows(ensure_synthetic(spec, tmp_path / "biased"))
    free_spec = SyntheticSpec(**{**spec.__dict__, "val_shortcut": "random"})
    free = _rows(ensure_synthetic(free_spec, tmp_path / "free"))
    agree = {name: np.mean([r["label"] == r["shortcut"] for r in rows if r["split"] == "val"])
             for name, rows in (("biased", biased), ("free", free))}
    assert agree["biased"] > 0.82 and agree["free"] < 0.4
    train = [r for r in biased if r["split"] == "train"]
    assert train == [r for r in free if r["split"] == "train"]  # the training data is the same
    assert free_spec.key() != spec.key()
    with pytest.raises(ConfigError, match="data.synthetic.val_shortcut=none"):
        SyntheticSpec(val_shortcut="none")


def test_annotations_findings_in_lungs_and_tag_as_irrelevant(tmp_path):
    root = ensure_synthetic(SPEC, tmp_path)
    records = read_folder(root, ["finding"])
    coco = json.loads((root / "annotations.json").read_text())
    assert {c["name"] for c in coco["categories"]} == {"finding", "irrelevant", "lung"}
    for record in records[:40]:
        assert record.has_prior and len(record.irrelevant) == 1
        tag_x0, tag_y0, tag_x1, tag_y1 = record.irrelevant[0].bounds()
        for region in record.relevant:
            x0, y0, x1, y1 = region.bounds()
            assert 0.15 * 48 < (x0 + x1) / 2 < 0.85 * 48  # inside the chest, not a corner
            assert x1 < tag_x0 or x0 > tag_x1 or y1 < tag_y0 or y0 > tag_y1  # no overlap
    lungs = read_folder(root, ["lung"])
    for record, with_lungs in zip(records[:40], lungs[:40]):
        assert len(with_lungs.relevant) == 2 and with_lungs.irrelevant == record.irrelevant
        centres = sorted((b[0] + b[2]) / 2 for b in (r.bounds() for r in with_lungs.relevant))
        assert centres[0] < 0.5 * 48 < centres[1]  # one outline per lung
        for finding in record.relevant:  # every finding's centre lies inside a lung outline's bounds
            x0, y0, x1, y1 = finding.bounds()
            assert any(b[0] <= (x0 + x1) / 2 <= b[2] and b[1] <= (y0 + y1) / 2 <= b[3]
                       for b in (r.bounds() for r in with_lungs.relevant))
    with pytest.raises(InputError, match="relevant_categories names lesion.*finding, irrelevant, lung"):
        read_folder(root, ["lesion"])


def test_tag_position_encodes_the_shortcut_class():
    spec = SyntheticSpec(size=64)
    for tag_class, (tx, ty) in enumerate(TAG_POSITIONS[:4]):
        image, _, box, _ = render_sample(np.random.default_rng(tag_class), 0, tag_class, spec)
        x, y, w, h = box
        assert abs((x + w / 2) / 64 - tx) < 0.05 and abs((y + h / 2) / 64 - ty) < 0.05
        assert image[int(y + h / 2), int(x + 1)] > 0.9  # the tag is bright


def test_each_finding_lies_inside_its_annotations():
    for label in range(4):
        for seed in range(5):
            with_finding, regions, _, _ = render_sample(np.random.default_rng(seed), label, 0,
                                                     SyntheticSpec(size=64, contrast=0.4))
            without, _, _, _ = render_sample(np.random.default_rng(seed), label, 0,
                                          SyntheticSpec(size=64, contrast=0.0))
            difference = np.abs(with_finding - without)
            inside = np.zeros(difference.shape, dtype=bool)
            for region in regions:
                x, y, w, h = region["bbox"]
                inside[math.floor(y):math.ceil(y + h), math.floor(x):math.ceil(x + w)] = True
            assert difference[inside].mean() > 0.02, (label, seed)
            assert difference[~inside].sum() < 0.05 * difference.sum(), (label, seed)
