"""The edit table: applied by the datasets with its fill and margin, shown by the round pictures,
stored in checkpoints and edits.json (old files still load)."""

import json

import numpy as np
import torch

from hkd.imil.edits import Edit, EditTable, load_edits
from hkd.imil.masks import encode_mask
from hkd.imil.pictures import round_pictures
from hkd.run.build import build_datamodule, edit_table


def _training_images(cfg):
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule.training_images()


def _mark(size, rows, cols):
    mask = np.zeros((size, size), dtype=bool)
    mask[rows, cols] = True
    return mask


def test_margin_removes_the_marked_region_and_its_rim(tiny):
    """With imil.margin=1 an edit also replaces the one-pixel rim around the mark (where a resized
    object's edge survives); nothing further out changes, in the augmented and the eval datasets."""
    cfg = tiny("imil.margin=1", "imil.fill=zero", "augment.policy=none")
    images = _training_images(cfg)
    idx = int(images.indices[0])
    original = images.original(idx)[0]
    table = edit_table(cfg)
    table[idx] = Edit(mask=_mark(32, slice(10, 12), slice(10, 14)), round=1, epoch=0, source="oracle")
    images.use_edits(table)
    for dataset in (images.evaluation_dataset(), images.train):
        edited = dataset.raw(idx)[0][0]
        assert (edited[9:13, 9:15] == 0).all()  # the mark and its rim
        outside = torch.ones_like(edited, dtype=torch.bool)
        outside[9:13, 9:15] = False
        assert torch.equal(edited[outside], original[outside])
    assert torch.equal(images.evaluation_dataset(edited=False).raw(idx)[0][0], original)


def test_round_pictures_show_the_edit_as_training_sees_it(tiny):
    cfg = tiny("imil.fill=mean", "data.fill_mean=0.5")
    images = _training_images(cfg)
    idx = int(images.indices[3])
    mask = _mark(32, slice(2, 9), slice(20, 30))
    table = edit_table(cfg)
    table[idx] = Edit(mask=mask, round=1, epoch=0, source="clinician")
    images.use_edits(table)
    [(shown, (original, removed, edited))] = list(round_pictures(images, table, [idx]))
    assert shown == idx and np.array_equal(removed, mask.astype(np.float32))
    assert np.allclose(edited[mask], 0.5) and np.array_equal(edited[~mask], original[~mask])
    assert np.allclose(images.evaluation_dataset().raw(idx)[0][0].numpy(), edited)


def test_table_round_trips_through_state_and_edits_json(tmp_path):
    table = EditTable(fill="inpaint", margin=2, fill_mean=0.3)
    table[5] = Edit(mask=_mark(16, slice(1, 4), slice(2, 9)), round=1, epoch=3, source="oracle",
                    reason="irrelevant annotation", label=2, prediction=0)
    table[9] = Edit(mask=_mark(16, slice(0, 2), slice(0, 2)), round=2, epoch=5, source="propagated")
    assert table.clinician_count() == 1 and sorted(table.clinician_masks()) == [5]
    restored = EditTable()
    restored.load_state_dict(json.loads(json.dumps(table.state_dict())))  # JSON-safe, int keys back
    path = tmp_path / "imil" / "edits.json"
    path.parent.mkdir()
    path.write_text(json.dumps(table.to_json(rounds=[{"round": 1}], pending_round=None)))
    for copy in (restored, load_edits(tmp_path)):
        assert sorted(copy) == [5, 9]
        assert np.array_equal(copy[5].mask, table[5].mask) and copy[5].reason == "irrelevant annotation"
        assert copy[9].source == "propagated" and copy[9].label == -1
    loaded = load_edits(tmp_path)
    assert (loaded.fill, loaded.margin, loaded.fill_mean) == ("inpaint", 2, 0.3)
    stored = json.loads(path.read_text())["edits"][0]["mask"]  # COCO RLE, readable by pycocotools
    assert set(stored) == {"size", "counts"} and stored["size"] == [16, 16]
    from pycocotools import mask as coco_mask

    assert np.array_equal(coco_mask.decode({**stored, "counts": stored["counts"].encode()}), table[5].mask)


def test_version_1_edits_json_still_loads(tmp_path):
    """Files written before the edit table existed: no fill or margin, 'who' only on some edits."""
    mask = _mark(8, slice(0, 3), slice(0, 3))
    (tmp_path / "imil").mkdir()
    (tmp_path / "imil" / "edits.json").write_text(json.dumps({
        "version": 1, "n_edited": 1, "n_clinician": 1, "rounds": [], "pending_round": None,
        "edits": [{"idx": 4, "round": 1, "epoch": 2, "source": "clinician", "reason": "",
                   "who": "dr. a", "label": 1, "prediction": 0, "mask": encode_mask(mask)}]}))
    table = load_edits(tmp_path)
    assert (table.fill, table.margin) == ("zero", 0) and table[4].who == "dr. a"
    assert np.array_equal(table[4].mask, mask) and table[4].confirmed is False


def test_inpainted_edits_are_made_once_and_equal_a_fresh_fill(tiny, monkeypatch):
    """precompute fills each inpainted edit once; reads copy it (equal to filling again), a
    replaced edit is filled anew, and the cheap fills are not stored."""
    import pickle

    import hkd.imil.edits as edits_module

    cfg = tiny("imil.fill=inpaint", "augment.policy=none")
    images = _training_images(cfg)
    first, second = (int(i) for i in images.indices[:2])
    table = edit_table(cfg)
    for idx in (first, second):
        table[idx] = Edit(mask=_mark(32, slice(4, 20), slice(6, 18)), round=1, epoch=0, source="oracle")
    images.use_edits(table)
    fresh = {idx: table.fill_image(idx, images.original(idx)) for idx in (first, second)}
    table.precompute(images.original)
    calls = []
    original_black_out = edits_module.black_out
    monkeypatch.setattr(edits_module, "black_out", lambda *a: calls.append(1) or original_black_out(*a))
    workers_copy = pickle.loads(pickle.dumps(table))  # what a DataLoader worker receives
    for idx in (first, second):
        assert torch.equal(images.evaluation_dataset().raw(idx)[0], fresh[idx])
        assert torch.equal(workers_copy.apply(idx, images.original(idx)), fresh[idx])
    assert not calls  # no inpainting on read
    table[first] = Edit(mask=_mark(32, slice(20, 30), slice(2, 8)), round=2, epoch=1, source="oracle")
    assert not torch.equal(table.apply(first, images.original(first)), fresh[first])
    assert len(calls) == 1  # the replaced edit is filled again
    zero = EditTable(fill="zero")
    zero[first] = table[first]
    zero.precompute(images.original)
    assert not zero.filled


def test_edit_scope_all_removes_every_region_from_every_training_image(tiny, tmp_path):
    """imil.edit_scope=all: the union of the regions marked so far is removed, at the same place,
    from images of every class (marked or not); each marked image also loses its own region; the
    union follows the table and its scope survives edits.json."""
    cfg = tiny("imil.edit_scope=all", "imil.fill=zero", "augment.policy=none")
    images = _training_images(cfg)
    first, second, *others = (int(i) for i in images.indices)
    table = edit_table(cfg)
    table[first] = Edit(mask=_mark(32, slice(0, 4), slice(0, 4)), round=1, epoch=0, source="oracle")
    images.use_edits(table)
    labels = {int(images.train_eval.labels[i]) for i in others}
    assert len(labels) > 1  # images of several classes
    for idx in others:
        edited, original = images.evaluation_dataset().raw(idx)[0][0], images.original(idx)[0]
        assert (edited[0:4, 0:4] == 0).all() and torch.equal(edited[4:, 4:], original[4:, 4:])
    table[second] = Edit(mask=_mark(32, slice(28, 32), slice(28, 32)), round=2, epoch=1, source="propagated")
    for idx in (first, others[0]):  # a new region joins the union at once
        edited = images.train.raw(idx)[0][0]
        assert (edited[0:4, 0:4] == 0).all() and (edited[28:32, 28:32] == 0).all()
    assert images.evaluation_dataset(edited=False).raw(others[0])[0][0][0:4, 0:4].equal(
        images.original(others[0])[0][0:4, 0:4])  # the originals are untouched
    path = tmp_path / "edits.json"
    path.write_text(json.dumps(table.to_json([], None)))
    assert EditTable.read(path).scope == "all" and EditTable.read(path).changes(others[1])
    sample = edit_table(tiny("imil.fill=zero"))  # the paper's scope: only the marked image changes
    sample[first] = table[first]
    assert sample.changes(first) and not sample.changes(others[0])
