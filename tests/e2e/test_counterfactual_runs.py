"""Counterfactual validation in real runs: the views' metrics are logged every validation epoch and
select the checkpoint; without any relevant region the keys are absent with one warning; `hkd audit`
writes its report, figure and model-card lines; IMIL mines the samples the swap flips."""

import csv
import json
import logging

import lightning as L
import numpy as np
import pytest
import torch
from conftest import make_folder_dataset

from hkd.cli import main
from hkd.imil.mining import Miner
from hkd.run.build import build_datamodule, build_module, swap_settings
from hkd.run.experiment import run_experiment

COUNTERFACTUAL = ["counterfactual.enabled=true", "checkpoint.monitor=val/cf_score", "trainer.max_epochs=3",
                  "augment.policy=none"]


def validation_rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("val/loss")]


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
    from conftest import tiny_config

    tmp = tmp_path_factory.mktemp("counterfactual")
    return run_experiment(tiny_config(tmp, *COUNTERFACTUAL))


def test_every_validation_epoch_logs_the_views_and_the_score_selects_the_checkpoint(selected_run):
    *rows, final = validation_rows(selected_run)  # the epochs, then the best checkpoint's validation
    assert len(rows) == 3
    for row in rows:
        clean, swap = float(row["val/balanced_accuracy"]), float(row["val/cf/balanced_accuracy"])
        assert float(row["val/cf_score"]) == pytest.approx(min(clean, swap), abs=1e-6)
        assert 0 <= float(row["val/cf/flip_rate"]) <= 1 and 0 <= float(row["val/roi/balanced_accuracy"]) <= 1
    scores = [float(row["val/cf_score"]) for row in rows]
    summary = json.loads((selected_run / "summary.json").read_text())
    assert f"epoch={int(np.argmax(scores)):02d}" in summary["best_checkpoint"]  # selected by the score
    assert summary["val"]["cf_score"] == pytest.approx(max(scores), abs=1e-6) == float(final["val/cf_score"])
    coverage = summary["counterfactual"]
    assert coverage["with_region"] == coverage["val_images"] > 0 and coverage["without_region"] == 0


def test_without_any_region_the_keys_are_absent_with_one_warning(tiny, tmp_path, caplog):
    root = make_folder_dataset(tmp_path / "data", n_per_class=10, size=40, with_split=True,
                               annotations=False)
    with caplog.at_level(logging.WARNING):
        run_dir = run_experiment(tiny("data.format=folder", f"data.root={root}",
                                      "counterfactual.enabled=true", "trainer.max_epochs=1"))
    assert not any(key.startswith(("val/cf", "val/roi")) for key in validation_rows(run_dir)[0])
    warnings = [m for m in caplog.messages if "none of the" in m and "relevant region" in m]
    assert len(warnings) == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["counterfactual"]["with_region"] == 0


def test_the_audit_reports_flips_per_class_with_intervals_a_figure_and_a_verdict(selected_run, capsys):
    assert main(["audit", str(selected_run), "--images", "3"]) == 0
    folder = selected_run / "audit" / "synthetic-test"
    report = json.loads((folder / "audit.json").read_text())
    printed = capsys.readouterr().out
    assert report["verdict"] in printed and f"{round(100 * report['flip_rate'])} %" in report["verdict"]
    per_class = report["per_class"].values()
    assert sum(row["images"] for row in per_class) == report["with_region"] > 0
    weighted = sum(row["flip_rate"] * row["images"] for row in per_class) / report["with_region"]
    assert report["flip_rate"] == pytest.approx(weighted)
    low, high = report["flip_rate_ci"]
    assert low <= report["flip_rate"] <= high
    assert set(report["balanced_accuracy"]) == {"clean", "swap", "roi", "swap_same"}
    # the control: the flips beyond those an outside of the same class causes
    assert report["shortcut_flip_rate"] == pytest.approx(report["flip_rate"] - report["flip_rate_same_class"])
    low, high = report["shortcut_flip_rate_ci"]
    assert low <= report["shortcut_flip_rate"] <= high
    assert f"{round(100 * report['shortcut_flip_rate'])} points" in report["verdict"]
    assert (folder / "changed_most.png").stat().st_size > 5000
    assert "# Shortcut audit" in (folder / "audit.md").read_text()
    assert report["verdict"] in (selected_run / "MODEL_CARD.md").read_text()
    assert main(["compare", str(selected_run), "--plot", ""]) == 0
    listed = capsys.readouterr().out
    assert (f"synthetic-test: flip rate {100 * report['flip_rate']:.1f} %, shortcut flip rate "
            f"{100 * report['shortcut_flip_rate']:.1f} points") in listed


def test_mining_flips_scores_each_sample_by_its_swap_view(tiny):
    cfg = tiny("imil.enabled=true", "imil.mine=flips", "augment.policy=none")
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    module = build_module(cfg, datamodule.classes).eval()
    miner = Miner(datamodule.training_images(), "flips", swap_settings(cfg), seed=0)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    idx, labels, predictions, losses, drops, flipped = miner.mine(trainer, module, set())
    dataset = miner.images.evaluation_dataset()
    views, swapped = dataset.swapped_images_for(idx, miner.partners, miner.swap)
    with torch.no_grad():
        clean = module(dataset.images_for(idx)).softmax(1)
        swap = module(views).softmax(1)
    rows = np.arange(len(idx))
    expected = (clean[rows, labels] - swap[rows, labels]).numpy()
    assert swapped.all() and np.allclose(drops, expected, atol=1e-4)
    assert np.array_equal(flipped > 0, (swap.argmax(1) != clean.argmax(1)).numpy())


def test_the_summary_names_the_selected_epoch_and_keeps_the_last_epoch_beside_it(selected_run):
    *rows, _ = validation_rows(selected_run)
    summary = json.loads((selected_run / "summary.json").read_text())
    scores = [float(row["val/cf_score"]) for row in rows]
    assert summary["epochs"] == {"selected": int(np.argmax(scores)), "last": 2}
    last = summary["val_last_epoch"]  # the same model as the last validation epoch logged
    assert last["balanced_accuracy"] == pytest.approx(float(rows[-1]["val/balanced_accuracy"]), abs=1e-5)
    swapped = float(rows[-1]["val/cf/balanced_accuracy"])
    assert last["cf_balanced_accuracy"] == pytest.approx(swapped, abs=1e-5)
    test = summary["test_last_epoch"]
    assert set(test) >= {"balanced_accuracy", "worst_class_accuracy"}
    assert test["worst_class_accuracy"] <= test["balanced_accuracy"]
    assert summary["test"]["worst_class_accuracy"] <= summary["test"]["balanced_accuracy"]


def test_counterfactual_training_swaps_every_drawn_image_and_counts_them(tiny):
    run_dir = run_experiment(tiny("augment.counterfactual.p=1.0", "augment.counterfactual.partner=any",
                                  "trainer.max_epochs=2"))
    with open(run_dir / "metrics.csv", newline="") as handle:
        epochs = [row for row in csv.DictReader(handle) if row.get("train/cf_swapped")]
    assert [float(row["train/cf_swapped"]) for row in epochs] == [40.0, 40.0]  # every training image
    assert [float(row["train/cf_without_region"]) for row in epochs] == [0.0, 0.0]
