"""hkd refit: a trained run's classifier head refitted on counterfactual views, the backbone frozen,
into a new run directory that the other commands read like any run."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from torch.utils.data import DataLoader

from hkd.cli import main
from hkd.inference.refit import STRENGTHS, linear_head, pre_logits
from hkd.run.build import build_datamodule, swap_settings
from hkd.run.checkpoints import load_classifier
from hkd.run.experiment import run_experiment


def test_refit_fits_only_the_head_on_swap_views_into_a_usable_run(tiny, tmp_path, capsys):
    cfg = tiny("trainer.max_epochs=2")
    run_dir = run_experiment(cfg)
    assert main(["refit", str(run_dir)]) == 0
    refit_dir = run_dir.with_name(f"{run_dir.name}-refit")
    assert str(refit_dir) in capsys.readouterr().out
    summary = json.loads((refit_dir / "summary.json").read_text())
    record = summary["refit"]
    scores = {float(s): v["val_swap_balanced_accuracy"] for s, v in record["scores"].items()}
    assert set(scores) == set(STRENGTHS) and record["strength"] == max(scores, key=scores.get)
    assert record["train_views"] == 40 and "balanced_accuracy" in summary["test"]

    before = load_classifier(json.loads((run_dir / "summary.json").read_text())["best_checkpoint"])
    after = load_classifier(summary["best_checkpoint"])
    name, head = linear_head(after.net)
    changed = {key for key, value in after.state_dict().items()
               if not torch.equal(value, before.state_dict()[key])}
    assert changed == {f"net.{name}.weight", f"net.{name}.bias"}  # only the head moved

    # the kept head scores the validation swap views as the fit said it would
    datamodule = build_datamodule(cfg)
    datamodule.add_counterfactual_views("val", swap_settings(cfg))
    labels, predicted = [], []
    with torch.no_grad():
        for batch in DataLoader(datamodule.datasets["val"], batch_size=16):
            region = batch["has_region"].bool()
            predicted.append(head(pre_logits(after.net, batch["cf_swap"][region])).argmax(1).numpy())
            labels.append(batch["label"][region].numpy())
    swapped = balanced_accuracy_score(np.concatenate(labels), np.concatenate(predicted))
    assert swapped == pytest.approx(scores[record["strength"]], abs=0.02)

    assert "Classifier head refitted on counterfactual views" in (refit_dir / "MODEL_CARD.md").read_text()
    assert main(["export", str(refit_dir), "--format", "torchscript"]) == 0
    assert main(["refit", str(run_dir)]) == 2  # never over a finished refit
    assert "already holds a refit" in capsys.readouterr().err
