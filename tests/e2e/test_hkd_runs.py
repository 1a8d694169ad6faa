"""HKD end to end: the two stages in one run directory, a reused teacher, few annotations with
a predicted prior."""

import csv
import json

import numpy as np
import pytest
import torch

from hkd.run.build import build_datamodule, build_method, build_module
from hkd.run.experiment import run_experiment
from tests.probe_callbacks import RecordBatchKeys


def test_two_stage_run_records_teacher_and_student(tiny):
    keys = RecordBatchKeys()
    run_dir = run_experiment(tiny("method.name=hkd", "trainer.max_epochs=2", "hkd.teacher_epochs=1"),
                             extra_callbacks=[keys])
    assert "roi" in keys.train and "roi" not in keys.val  # the student validates on images alone
    summary = json.loads((run_dir / "summary.json").read_text())
    teacher = json.loads((run_dir / "teacher" / "summary.json").read_text())
    assert summary["method"] == "hkd" and summary["teacher"]["best_checkpoint"].startswith(str(run_dir))
    assert "annotations at test time" in teacher["note"] and "accuracy" in teacher["test_on_roi"]
    assert (run_dir / "teacher" / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "teacher" / "metrics.csv").is_file()
    student = torch.load(summary["best_checkpoint"], weights_only=False)["state_dict"]
    teacher_ckpt = torch.load(teacher["best_checkpoint"], weights_only=False)["state_dict"]
    teacher_net = {key[len("net."):]: value for key, value in teacher_ckpt.items() if key.startswith("net.")}
    assert teacher_net  # the frozen teacher inside the student is stage 1's
    assert all(torch.equal(student["method.teacher." + key], value) for key, value in teacher_net.items())
    # a trained teacher can be reused by another run
    reused = run_experiment(tiny("method.name=hkd", "trainer.max_epochs=1",
                                 f"hkd.teacher_checkpoint={teacher['best_checkpoint']}"))
    assert not (reused / "teacher").exists()
    assert json.loads((reused / "summary.json").read_text())["teacher"]["reused"]


def test_roi_fraction_and_predicted_priors(tiny):
    cfg = tiny("method.name=hkd", "hkd.roi_fraction=0.25")
    datamodule = build_datamodule(cfg, roi_mode="blackout")
    datamodule.prepare_data()
    datamodule.setup()
    train = datamodule.datasets["train"].indices
    assert datamodule.has_prior[train].sum() == 10  # 25% of the 40 annotated training images
    assert datamodule.has_prior[datamodule.datasets["test"].indices].all()
    run_dir = run_experiment(tiny("method.name=hkd", "hkd.roi_fraction=0.25", "hkd.prior=predicted",
                                  "hkd.teacher_epochs=1", "prior_generator.epochs=2"))
    summary = json.loads((run_dir / "summary.json").read_text())
    generator = summary["prior_generator"]
    assert generator["n_train"] == 10 and generator["n_predicted"] > 0
    with open(run_dir / "prior_generator" / "metrics.csv", newline="") as handle:
        dice = [float(row["prior_generator/val_dice"]) for row in csv.DictReader(handle)
                if row.get("prior_generator/val_dice")]
    assert generator["val_dice"] == pytest.approx(dice[-1])  # the generator's last validation


def test_roi_fraction_subset_mode_trains_the_teacher_on_the_sample_for_longer(tiny):
    """PneuKnowNet's ablation: 25 % of the 40 annotated images, teacher epochs x 1 / 0.25."""
    run_dir = run_experiment(tiny("method.name=hkd", "hkd.roi_fraction=0.25",
                                  "hkd.roi_fraction_mode=subset", "hkd.teacher_epochs=1"))
    teacher = json.loads((run_dir / "teacher" / "summary.json").read_text())
    assert teacher["epochs"] == 4 and teacher["train_images"] == 10
    last = torch.load(run_dir / "teacher" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    assert last["epoch"] == 3  # the fourth, 0-based
    assert last["global_step"] == 4 * 2  # 10 images in batches of 8: 2 steps an epoch


def test_roi_fraction_authors_mode_is_pneuknownets_ablation(tiny):
    """train_kd.py: the teacher on 30 % of the 40 training images for floor(2 / 0.3) = 6 epochs
    (subset rounds: 7); the student keeps every image's annotations, so every ROI is a real one."""
    overrides = ("method.name=hkd", "hkd.roi_fraction=0.3", "hkd.teacher_epochs=2")
    authors = build_datamodule(tiny(*overrides, "hkd.roi_fraction_mode=authors"))
    subset = build_datamodule(tiny(*overrides, "hkd.roi_fraction_mode=subset"))
    for datamodule in (authors, subset):
        datamodule.setup()
    train = authors.datasets["train"].indices
    assert authors.has_prior[train].sum() == 40 and subset.has_prior[train].sum() == 12
    # the same seeded share of images for the teacher in both readings
    assert authors.annotated_training_positions(0.3) == subset.annotated_training_positions()
    run_dir = run_experiment(tiny(*overrides, "hkd.roi_fraction_mode=authors", "trainer.max_epochs=1"))
    teacher = json.loads((run_dir / "teacher" / "summary.json").read_text())
    assert teacher["epochs"] == 6 and teacher["train_images"] == 12


def test_cached_teacher_features_equal_fresh_ones_and_follow_the_teacher(tiny, tmp_path):
    """hkd.cache_teacher_features: the cached features give the loss a teacher pass gives (to
    1e-6); another teacher checkpoint gets its own cache; augmentation refuses the cache."""

    from hkd.config import load_config
    from hkd.errors import ConfigError
    from hkd.run.teacher import cache_teacher_features, existing_teacher

    overrides = ("method.name=hkd", "augment.policy=none", "hkd.cache_teacher_features=true",
                 "hkd.teacher_epochs=1")
    keys = RecordBatchKeys()
    run_dir = run_experiment(tiny(*overrides), extra_callbacks=[keys])
    assert "teacher_features" in keys.train and "roi" not in keys.train  # no ROI images built
    summary = json.loads((run_dir / "summary.json").read_text())
    record = summary["teacher_features"]
    cfg = tiny(*overrides)
    datamodule = build_datamodule(cfg, roi_mode="blackout")
    datamodule.setup()
    teacher = existing_teacher(summary["teacher"]["best_checkpoint"], summary["teacher"])
    method = build_method(cfg, len(datamodule.classes))
    method.load_teacher(teacher.weights)
    module = build_module(cfg, datamodule.classes, method)
    batch = next(iter(datamodule.train_dataloader()))
    fresh = method.training_loss(module, batch)["kd_mse"]
    cache = cache_teacher_features(cfg, datamodule, method, teacher.checkpoint)
    assert cache.record["folder"] == record["folder"]  # the run's file, reused
    method.use_teacher_features(cache.features, cache.rows)
    cached_batch = method.before_transfer(batch)
    assert "teacher_features" in cached_batch
    cached = method.training_loss(module, cached_batch)["kd_mse"]
    assert float(cached) == pytest.approx(float(fresh), abs=1e-6)
    val_batch = next(iter(datamodule.val_dataloader()))
    assert "teacher_features" not in method.before_transfer(val_batch)  # only training samples
    other = tmp_path / "other_teacher.ckpt"  # a different teacher: its own cache
    state = torch.load(summary["teacher"]["best_checkpoint"], weights_only=False)
    state["state_dict"] = {k: v * 1.5 if v.is_floating_point() else v for k, v in state["state_dict"].items()}
    torch.save(state, other)
    other_method = build_method(cfg, len(datamodule.classes))
    other_method.load_teacher(existing_teacher(other, {}).weights)
    again = cache_teacher_features(cfg, datamodule, other_method, other)
    assert again.record["folder"] != record["folder"]
    assert not np.allclose(again.features, cache.features)
    with pytest.raises(ConfigError, match="augment.policy"):
        load_config("quickstart", ["method.name=hkd", "hkd.cache_teacher_features=true"])


def test_hkd_without_any_training_region_is_refused_before_training(tiny, tmp_path):
    from conftest import make_folder_dataset

    from hkd.errors import ConfigError

    root = make_folder_dataset(tmp_path / "data", n_per_class=10, with_split=True, annotations=False)
    with pytest.raises(ConfigError, match="none of the 12 training images has a relevant region.*self-dist"):
        run_experiment(tiny("method.name=hkd", "data.format=folder", f"data.root={root}"))
    assert not list((tmp_path / "runs").rglob("*.ckpt"))


def test_the_self_distillation_control_is_asked_for_with_prior_none(tiny):
    """The papers' "noroi" row: the teacher on raw images, although the data has annotations."""
    cfg = tiny("method.name=hkd", "hkd.prior=none", "hkd.teacher_epochs=1", "trainer.max_epochs=1")
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    assert not datamodule.has_prior[datamodule.datasets["train"].indices].any()
    assert datamodule.has_prior[datamodule.datasets["test"].indices].all()  # still scored on test
    run_dir = run_experiment(cfg)
    assert json.loads((run_dir / "summary.json").read_text())["teacher"]["epochs"] == 1
