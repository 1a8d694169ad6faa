"""IMIL in real Trainer runs: edits reach the loaders, resume keeps them, the review queue,
propagation, W&B."""

import csv
import json

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from hkd.imil.callback import IMILCallback
from hkd.imil.edits import Edit, load_edits
from hkd.imil.masks import decode_mask
from hkd.imil.mining import Miner
from hkd.run.build import build_datamodule, build_imil_callback, build_module, edit_table
from hkd.run.experiment import run_experiment
from hkd.run.trainer import build_trainer

IMIL = ["imil.enabled=true", "imil.start_epoch=0", "imil.every_n_epochs=1", "augment.policy=none"]


class _EditChecker(Callback):
    """Asserts that every edited sample reaches training_step blacked out."""

    def __init__(self):
        self.seen_edited = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        imil = next(c for c in trainer.callbacks if isinstance(c, IMILCallback))
        fill = (0 - trainer.datamodule.samples.mean[0]) / trainer.datamodule.samples.std[0]
        for image, idx in zip(batch["image"], batch["idx"].tolist()):
            if idx in imil.table:
                mask = torch.from_numpy(imil.table[idx].mask)
                assert torch.allclose(image[0][mask], torch.tensor(fill)), idx
                self.seen_edited += 1


@pytest.mark.parametrize("workers", [0, 2])
def test_edits_reach_the_dataloader_after_the_round(tiny, tmp_path, workers):
    cfg = tiny(*IMIL, "imil.budget=0.5", "trainer.max_epochs=3", f"data.num_workers={workers}")
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)
    imil, checker = build_imil_callback(cfg, tmp_path), _EditChecker()
    trainer = build_trainer(cfg, tmp_path, 3, "val/loss", "min", callbacks=[imil, checker])
    trainer.fit(module, datamodule=datamodule)
    assert len(imil.table) and checker.seen_edited >= len(imil.table)  # epochs 1 and 2 see them
    assert all(imil.table[i].source == "oracle" for i in imil.table)
    # the synthetic oracle removes exactly the tag (the `irrelevant` annotation)
    cache = datamodule.datasets["train"].cache
    for idx in imil.table:
        assert np.array_equal(imil.table[idx].mask, np.asarray(cache.irrelevant[idx]) > 0)


def test_the_sham_control_edits_the_same_samples_with_as_much_area_elsewhere(tiny, tmp_path):
    rounds = {}
    for oracle in ("annotations", "sham"):
        cfg = tiny(*IMIL, "imil.budget=0.5", "trainer.max_epochs=2", f"imil.oracle={oracle}")
        L.seed_everything(cfg.seed)
        datamodule = build_datamodule(cfg)
        module = build_module(cfg, datamodule.classes)
        imil = build_imil_callback(cfg, tmp_path / oracle)
        trainer = build_trainer(cfg, tmp_path / oracle, 2, "val/loss", "min", callbacks=[imil])
        trainer.fit(module, datamodule=datamodule)
        rounds[oracle] = imil
    clinician, sham = rounds["annotations"].table, rounds["sham"].table
    assert sorted(sham) == sorted(clinician) and len(sham) > 0  # the same mined samples (same seed)
    for idx in sham:
        assert sham[idx].mask.sum() == clinician[idx].mask.sum()  # as much area ...
        assert not np.array_equal(sham[idx].mask, clinician[idx].mask)  # ... elsewhere
        assert sham[idx].reason.startswith("sham of: ")


class _UnionChecker(Callback):
    """Counts the training images that reach training_step with the union of every edit filled."""

    def __init__(self):
        self.checked = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        imil = next(c for c in trainer.callbacks if isinstance(c, IMILCallback))
        union = imil.table.union()
        if union is None:
            return
        fill = (0 - trainer.datamodule.samples.mean[0]) / trainer.datamodule.samples.std[0]
        for image in batch["image"]:
            assert torch.allclose(image[0][torch.from_numpy(union)], torch.tensor(fill))
            self.checked += 1


def test_edit_scope_all_removes_every_region_from_every_training_image(tiny, tmp_path):
    cfg = tiny(*IMIL, "imil.budget=0.2", "trainer.max_epochs=3", "imil.edit_scope=all")
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)
    imil, checker = build_imil_callback(cfg, tmp_path), _UnionChecker()
    trainer = build_trainer(cfg, tmp_path, 3, "val/loss", "min", callbacks=[imil, checker])
    trainer.fit(module, datamodule=datamodule)
    assert imil.table.union() is not None and imil.table.union().sum() > 0
    assert checker.checked >= 2 * 40  # every training image in the two epochs after the first round
    assert json.loads((tmp_path / "imil" / "edits.json").read_text())["scope"] == "all"


class _SeenByEpoch(Callback):
    """Per epoch: every (idx, blacked out?) the training batches carried."""

    def __init__(self):
        self.epochs: list[list[tuple[int, bool]]] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.epochs.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        imil = next(c for c in trainer.callbacks if isinstance(c, IMILCallback))
        fill = (0 - trainer.datamodule.samples.mean[0]) / trainer.datamodule.samples.std[0]
        for image, idx in zip(batch["image"], batch["idx"].tolist()):
            mask = torch.from_numpy(imil.table[idx].mask) if idx in imil.table else None
            edited = mask is not None and bool(torch.allclose(image[0][mask], torch.tensor(fill)))
            self.epochs[-1].append((idx, edited))


def test_added_edits_join_their_originals(tiny, tmp_path):
    """imil.edit=add: after the round every edited image is read twice an epoch, once as it was and
    once blacked out; the other images once."""
    cfg = tiny(*IMIL, "imil.budget=0.5", "trainer.max_epochs=2", "imil.edit=add")
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)
    imil, seen = build_imil_callback(cfg, tmp_path), _SeenByEpoch()
    trainer = build_trainer(cfg, tmp_path, 2, "val/loss", "min", callbacks=[imil, seen],
                            options={"reload_dataloaders_every_n_epochs": 1})  # as every IMIL run sets
    trainer.fit(module, datamodule=datamodule)
    n_train, edited = len(datamodule.datasets["train"].indices), set(imil.table)
    assert len(edited) > 0 and len(seen.epochs[0]) == n_train
    after = seen.epochs[1]
    assert len(after) == n_train + len(edited)
    assert sorted(idx for idx, blacked in after if blacked) == sorted(edited)  # each copy once
    originals = sorted(datamodule.datasets["train"].indices)
    assert sorted(idx for idx, blacked in after if not blacked) == originals


def test_persistent_workers_without_reload_fail_fast(tiny, tmp_path):
    cfg = tiny(*IMIL, "data.num_workers=1", "data.persistent_workers=true")
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg, tmp_path, 1, "val/loss", "min", job_type="teacher",
                            callbacks=[build_imil_callback(cfg, tmp_path)])  # teacher: no reload
    with pytest.raises(ValueError, match="edits would be lost"):
        trainer.fit(module, datamodule=datamodule)


def test_state_round_trip_and_resume_keep_the_same_edits(tiny):
    run_dir = run_experiment(tiny(*IMIL, "imil.budget=0.2", "trainer.max_epochs=2"))
    saved = load_edits(run_dir)
    assert 0 < len(saved) <= 8  # 20% of 40
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]["IMILCallback"]
    restored = build_imil_callback(tiny(*IMIL), run_dir)
    restored.load_state_dict(state)
    assert sorted(restored.table) == sorted(saved)
    assert all(np.array_equal(restored.table[i].mask, saved[i].mask) for i in saved)
    run_experiment(tiny(*IMIL, "imil.budget=0.2", f"resume={run_dir}", "trainer.max_epochs=4"),
                   [f"resume={run_dir}", "trainer.max_epochs=4"])
    after = load_edits(run_dir)
    assert set(saved) <= set(after) and len(after) <= 8  # kept, and the budget still holds
    assert all(np.array_equal(after[i].mask, saved[i].mask) for i in saved)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["imil_edited"] == len(after) and summary["imil_rounds"][0]["round"] == 1


def test_queue_round_trip_with_marks_and_coco(tiny):
    overrides = [*IMIL, "imil.oracle=queue", "imil.budget=0.2", "trainer.max_epochs=3"]
    run_dir = run_experiment(tiny(*overrides))
    round_1 = run_dir / "imil" / "round_1"
    manifest = json.loads((round_1 / "manifest.json").read_text())
    assert not (run_dir / "summary.json").exists()  # stopped for review, not evaluated
    assert len(manifest["samples"]) == 8
    first, second, third = manifest["samples"][:3]
    assert (round_1 / first["image"]).is_file() and (round_1 / first["cam"]).is_file()
    resume = [f"resume={run_dir}"]
    with pytest.raises(Exception, match="no marks yet"):
        run_experiment(tiny(*overrides, *resume), resume)
    w = first["width"]
    (round_1 / "marks.json").write_text(json.dumps({"samples": {
        first["id"]: {"status": "marked", "who": "dr. a", "when": "now",
                      "regions": [{"type": "rect", "x": 0, "y": 0, "w": w / 2, "h": w / 2}]},
        second["id"]: {"status": "skipped", "comment": "not an error", "regions": []}}}))
    (round_1 / "marks_coco.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": third["image"]}],
        "annotations": [{"image_id": 1, "bbox": [w / 2, w / 2, w / 4, w / 4]}]}))
    run_experiment(tiny(*overrides, *resume, "imil.budget=0.2"), resume)
    edits = json.loads((run_dir / "imil" / "edits.json").read_text())
    applied = {e["idx"]: e for e in edits["edits"]}
    assert set(applied) >= {first["idx"], third["idx"]} and second["idx"] not in applied
    mask = decode_mask(applied[first["idx"]]["mask"])
    size = mask.shape[0]
    assert mask[: size // 2 - 1, : size // 2 - 1].all() and not mask[size // 2 + 1:, :].any()
    assert applied[first["idx"]]["source"] == "clinician" and applied[first["idx"]]["who"] == "dr. a"
    assert edits["rounds"][0]["status"] == "reviewed"


def test_queue_propagation_proposals_are_confirmed_or_rejected_in_review(tiny):
    from starlette.testclient import TestClient

    from hkd.review.app import create_app

    overrides = [*IMIL, "imil.oracle=queue", "imil.budget=0.2", "imil.rounds=2", "imil.propagate=true",
                 "imil.propagate_confidence=0.5", "trainer.max_epochs=4"]
    run_dir = run_experiment(tiny(*overrides))
    datamodule = build_datamodule(tiny(*overrides))
    round_1 = run_dir / "imil" / "round_1"
    manifest = json.loads((round_1 / "manifest.json").read_text())
    marks = {}
    for sample in manifest["samples"]:  # the clinician marks each sample's tag
        x0, y0, x1, y1 = datamodule.records[sample["idx"]].irrelevant[0].bounds()
        marks[sample["id"]] = {"status": "marked", "regions": [
            {"type": "rect", "x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}]}
    (round_1 / "marks.json").write_text(json.dumps({"samples": marks}))
    resume = [f"resume={run_dir}"]
    run_experiment(tiny(*overrides, *resume), resume)
    edits = json.loads((run_dir / "imil" / "edits.json").read_text())
    proposals = edits["rounds"][1]
    assert proposals["kind"] == "proposals" and proposals["selected"]
    propagated = {e["idx"] for e in edits["edits"] if e["source"] == "propagated"}
    assert propagated == set(proposals["selected"])  # applied, logged apart from the clinician's
    client = TestClient(create_app(run_dir), base_url="http://127.0.0.1")
    listed = client.get("/api/rounds").json()["rounds"]
    assert [r["kind"] for r in listed[:2]] == ["outliers", "proposals"]
    samples = client.get("/api/rounds/2").json()["samples"]
    assert client.get(f"/api/rounds/2/samples/{samples[0]['id']}/proposal").content[:4] == b"\x89PNG"
    assert client.put(f"/api/rounds/2/samples/{samples[0]['id']}/marks",
                      json={"status": "accepted", "regions": []}).status_code == 200
    rejected = samples[-1]
    assert len(samples) > 1  # one proposal accepted, another rejected
    assert client.put(f"/api/rounds/2/samples/{rejected['id']}/marks",
                      json={"status": "not_an_error", "regions": []}).status_code == 200
    pending = max(r["round"] for r in listed)  # the next mining round, also waiting
    assert pending == 3
    first = json.loads((run_dir / "imil" / f"round_{pending}" / "manifest.json").read_text())["samples"][0]
    (run_dir / "imil" / f"round_{pending}" / "marks.json").write_text(
        json.dumps({"samples": {first["id"]: {"status": "skipped", "regions": []}}}))
    run_experiment(tiny(*overrides, *resume), resume)
    final = json.loads((run_dir / "imil" / "edits.json").read_text())
    by_idx = {e["idx"]: e for e in final["edits"]}
    assert by_idx[samples[0]["idx"]]["confirmed"] is True
    assert rejected["idx"] not in by_idx
    assert final["rounds"][1]["status"] == "confirmed"
    summary = json.loads((run_dir / "summary.json").read_text())  # shares of the training images
    n_train = summary["splits"]["train"]["images"]
    propagated_after = sum(e["source"] == "propagated" for e in final["edits"])
    assert propagated_after > 0
    assert summary["imil_clinician_share"] == pytest.approx(final["n_clinician"] / n_train)
    assert summary["imil_propagated_share"] == pytest.approx(propagated_after / n_train)
    assert summary["imil_edited_share"] == pytest.approx(final["n_edited"] / n_train)


def test_propagation_stops_once_every_training_image_is_edited(tiny, tmp_path, monkeypatch):
    """Round 1 proposes a region for every image it can (threshold 0: all of them); later rounds
    still mine and mark, but train no generator: nothing is left to propose to."""
    import hkd.imil.propagator as propagator_module

    calls = []
    real = propagator_module.propose_irrelevant_regions
    monkeypatch.setattr(propagator_module, "propose_irrelevant_regions",
                        lambda *args, **kwargs: calls.append(args[4]) or real(*args, **kwargs))
    cfg = tiny(*IMIL, "imil.budget=1.0", "imil.propagate=true", "imil.propagate_confidence=0",
               "imil.propagate_max_area=1", "prior_generator.threshold=0", "prior_generator.epochs=1",
               "imil.propagate_updates=2", "trainer.max_epochs=4")
    run_dir = run_experiment(cfg)
    rounds = json.loads((run_dir / "imil" / "edits.json").read_text())["rounds"]
    n_train = json.loads((run_dir / "summary.json").read_text())["splits"]["train"]["images"]
    assert len(rounds[0]["edited"]) + len(rounds[0]["propagated"]) == n_train
    assert len(rounds) >= 2 and all(r.get("propagated") is None for r in rounds[1:])
    assert calls == [1]  # the generator trained in round 1 only
    assert rounds[0]["generator_updates"] == 2  # imil.propagate_updates: reproducing is checked every 10


def test_hkd_student_with_imil_composes(tiny):
    run_dir = run_experiment(tiny("method.name=hkd", *IMIL, "imil.budget=0.5", "hkd.teacher_epochs=1",
                                  "trainer.max_epochs=2"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "hkd" and summary["imil"] and summary["imil_edited"] > 0
    with open(run_dir / "metrics.csv", newline="") as handle:  # logged each round, as W&B gets it
        shares = [float(row["imil/clinician_share"]) for row in csv.DictReader(handle)
                  if row.get("imil/clinician_share")]
    assert shares and shares[-1] == pytest.approx(summary["imil_clinician_share"])
    assert (run_dir / "teacher" / "summary.json").is_file()
    assert not (run_dir / "teacher" / "imil").exists()  # only the student is edited


def test_round_table_reaches_wandb_with_its_images_offline(tiny, monkeypatch, tmp_path):
    """Real W&B (offline): each round's table (image, prediction, removed region, edited image)
    is logged to the run, its images staged for `wandb sync`."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = run_experiment(tiny(*IMIL, "imil.budget=0.25", "trainer.max_epochs=2", "logging.wandb=offline"))
    offline = next((run_dir / "wandb").glob("offline-run-*"))
    assert list(offline.rglob("media/table/imil/round_1*.table.json"))  # the run's panel
    files = [p.read_bytes() for p in (tmp_path / "wandb-data").rglob("*") if p.is_file()]
    staged = [json.loads(data) for data in files if data[:1] == b"{"]
    tables = [t for t in staged if t.get("_type") == "table"]
    assert tables and tables[0]["columns"] == ["epoch", "idx", "label", "prediction", "image",
                                               "removed", "edited"]
    n_rows = len(tables[0]["data"])  # one round here
    edits = json.loads((run_dir / "imil" / "edits.json").read_text())
    assert all(len(t["data"]) == n_rows for t in tables) and n_rows == edits["n_edited"] > 0
    pngs = [data for data in files if data[:4] == b"\x89PNG"]
    assert len(pngs) >= 3 * n_rows  # the images themselves, not the word "Image"


def test_mining_reads_whole_batches_of_the_edited_images_and_skips_reviewed_samples(tiny, tmp_path):
    """The batched mining pass gives the losses of a per-sample pass over the (edited) training
    images, and never spends a forward pass on a sample the oracle has already seen."""
    import torch.nn.functional as F
    from lightning.pytorch import Trainer

    cfg = tiny(*IMIL)
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    module = build_module(cfg, datamodule.classes).eval()
    table = edit_table(cfg)
    images = datamodule.training_images()
    images.use_edits(table)
    miner = Miner(images, cfg.imil.mine)
    dataset = images.evaluation_dataset()
    edited = int(dataset.indices[3])
    table[edited] = Edit(mask=np.ones((32, 32), bool), round=1, epoch=0, source="clinician")
    trainer = Trainer(accelerator="cpu", devices=1, logger=False)
    idx, labels, predictions, losses, drops, flipped = miner.mine(trainer, module, set())
    assert list(idx) == sorted(int(i) for i in dataset.indices)
    assert np.isnan(drops).all() and not flipped.any()  # imil.mine=mispredicted: no swap pass
    with torch.no_grad():
        for position in (0, 3):
            sample = dataset[position]
            expected = F.cross_entropy(module(sample["image"][None]), torch.tensor([sample["label"]]))
            assert losses[list(idx).index(sample["idx"])] == pytest.approx(float(expected), abs=1e-5)
    again = miner.mine(trainer, module, {int(i) for i in dataset.indices[:10]})[0]
    assert set(again) == {int(i) for i in dataset.indices[10:]}
