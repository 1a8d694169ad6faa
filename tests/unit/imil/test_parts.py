"""IMIL's collaborators, each on its own (the callback that schedules them is tested by the runs in
tests/e2e/test_imil_runs.py): the state, the binding of rows to images, the queue oracle's rounds,
the sham oracle and the propagator."""

import json
import logging

import lightning as L
import numpy as np
import pytest

from hkd.errors import InputError
from hkd.imil.binding import ImageBinding
from hkd.imil.edits import Edit, load_edits
from hkd.imil.oracles import AnnotationOracle, ShamOracle, random_rectangle, simulated_oracle
from hkd.imil.propagator import Propagator
from hkd.imil.queue import round_dir
from hkd.imil.review_rounds import ReviewRounds
from hkd.imil.rounds import Round
from hkd.imil.state import IMILState
from hkd.run.build import build_datamodule, build_imil_callback, build_module, edit_table


@pytest.fixture
def images(tiny):
    cfg = tiny("augment.policy=none")
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup()
    return cfg, datamodule, datamodule.training_images()


def mask(size: int = 32) -> np.ndarray:
    region = np.zeros((size, size), dtype=bool)
    region[:8, :8] = True
    return region


def test_state_records_marks_as_edits_and_renumbers_rows(tiny):
    state = IMILState(edit_table(tiny()))
    record = Round(round=1, epoch=2, selected=[5, 7, 9], labels=[0, 1, 2], predictions=[1, 1, 0])
    state.record_edits(record, [(5, mask(), "tag", "dr. a"), (7, None, "", "")], "clinician")
    assert record.edited == [5] and record.skipped == [7] and state.reviewed == {5, 7}
    edit = state.table[5]
    assert (edit.source, edit.reason, edit.who) == ("clinician", "tag", "dr. a")
    assert (edit.label, edit.prediction) == (0, 1)
    state.rounds.append(record)
    state.identities = {5: ["a.png", "1"], 7: ["b.png", "2"]}
    state.renumber({5: 50})  # 7's image is gone
    assert set(state.table) == {50} and state.reviewed == {50} and state.identities == {50: ["a.png", "1"]}
    assert record.selected == [50] and record.labels == [0] and record.edited == [50] and record.skipped == []

    restored = IMILState(edit_table(tiny()))
    restored.load_state_dict(json.loads(json.dumps(state.state_dict())))  # JSON-safe, int keys back
    assert restored.state_dict() == state.state_dict() and restored.mining_rounds() == 1


def test_state_publishes_edits_bound_to_their_images(images, tmp_path):
    cfg, _, training = images
    state = IMILState(edit_table(cfg))
    row = int(training.indices[0])
    state.table[row] = Edit(mask=mask(), round=1, epoch=0, source="oracle")
    state.publish(training, tmp_path / "imil" / "edits.json")
    assert state.identities[row] == list(training.identity(row))
    assert set(load_edits(tmp_path)) == {row}
    state.publish(training, None)  # another rank: binds, writes nothing
    assert not (tmp_path / "other").exists()


def test_binding_finds_moved_rows_and_names_changed_images(images, caplog):
    cfg, _, training = images
    first, second = (int(i) for i in training.indices[:2])
    binding = ImageBinding(training)
    assert binding.locate(*training.identity(first)) == (first, "")
    assert binding.locate("nowhere.png", "0")[0] is None
    name = training.identity(first)[0]
    row, problem = binding.locate(name, "not its content")
    assert row is None and "was replaced" in problem

    state = IMILState(edit_table(cfg))
    state.table[999] = Edit(mask=mask(), round=1, epoch=0, source="oracle")
    state.identities = {999: list(training.identity(second))}  # the image now sits in another row
    binding.rebind(state)
    assert set(state.table) == {second} and set(state.identities) == {second}

    state.identities[second] = [name, "changed"]
    with pytest.raises(InputError, match=f"{name} was replaced"):
        binding.rebind(state)
    with caplog.at_level(logging.WARNING):
        ImageBinding(training, "drop").rebind(state)
    assert not state.table and "dropping the edit or mark" in caplog.text
    with pytest.raises(ValueError, match="changed_images is one of error, drop"):
        ImageBinding(training, "keep")


def test_review_rounds_write_a_round_then_take_its_marks(images, tmp_path):
    cfg, datamodule, training = images
    state = IMILState(edit_table(cfg))
    training.use_edits(state.table)
    rounds = ReviewRounds(tmp_path, training, state, ImageBinding(training))
    module = build_module(cfg, datamodule.classes)
    chosen = [int(i) for i in training.indices[:2]]
    record = Round(round=1, epoch=0, selected=chosen, labels=[0, 0], predictions=[1, 1])
    rounds.write(L.Trainer(accelerator="cpu", logger=False), module, record)
    assert state.pending_round == 1 and record.status == "pending review"
    folder = round_dir(tmp_path, 1)
    manifest = json.loads((folder / "manifest.json").read_text())
    first, second = manifest["samples"]
    assert [s["idx"] for s in manifest["samples"]] == chosen
    assert first["file"] == training.identity(chosen[0])[0]
    with pytest.raises(InputError, match="no marks yet"):
        rounds.take_review()
    w = first["width"]
    (folder / "marks.json").write_text(json.dumps({"samples": {
        first["id"]: {"status": "marked", "who": "dr. b", "regions": [{"type": "rect", "x": 0, "y": 0,
                                                                       "w": w / 2, "h": w / 2}]},
        second["id"]: {"status": "skipped", "regions": []}}}))
    taken = rounds.take_review()
    assert taken.status == "reviewed" and taken.edited == [chosen[0]] and taken.skipped == [chosen[1]]
    assert state.pending_round is None and state.table[chosen[0]].who == "dr. b" and taken.closed_at
    (folder / "marks_coco.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(InputError, match="changed after round 1 was closed"):
        rounds.refuse_marks_after_closing()


def test_propagator_waits_for_a_clinician_mark(tiny, images):
    cfg, _, training = images
    settings = build_imil_callback(tiny("imil.propagate=true"), "unused").propagation
    state = IMILState(edit_table(cfg))
    propagator = Propagator(settings, training, state)
    assert not propagator.can_propagate()  # no mark yet
    state.table[int(training.indices[0])] = Edit(mask=mask(), round=1, epoch=0, source="oracle")
    assert propagator.can_propagate()
    for row in training.indices:  # every image edited: nothing left to propose to
        state.table[int(row)] = Edit(mask=mask(), round=1, epoch=0, source="oracle")
    assert not propagator.can_propagate()


def test_the_sham_oracle_marks_the_same_number_and_area_elsewhere(images):
    from scipy import ndimage

    cfg, _, training = images
    clinician, sham = AnnotationOracle(training), ShamOracle(training, seed=0)
    for idx in map(int, training.indices[:8]):
        truth, _ = clinician.irrelevant_regions(idx)
        fake, reason = sham.irrelevant_regions(idx)
        assert reason.startswith("sham of: ")
        assert fake.sum() == truth.sum() > 0  # the same area
        assert ndimage.label(fake)[1] <= ndimage.label(truth)[1]  # as many parts (or fewer, where two touch)
        assert not np.array_equal(fake, truth)
        assert np.array_equal(fake, ShamOracle(training, seed=0).irrelevant_regions(idx)[0])  # seeded
    for area in (1, 7, 100, 31 * 32, 32 * 32):  # any area fits, exactly
        assert random_rectangle(area, (32, 32), np.random.default_rng(area)).sum() == area
    assert isinstance(simulated_oracle("sham", training, 0), ShamOracle)
    assert simulated_oracle("queue", training, 0) is None
