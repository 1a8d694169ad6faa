"""Every timm family the README lists, as tiny instances: baseline and HKD train end to end and
export works (their feature maps and guided losses: tests/unit/models/test_backbone_families.py)."""

import csv
import json

import pytest
import torch
from backbone_families import FAMILIES
from conftest import tiny_config

from hkd import load_model
from hkd.cli import main
from hkd.run.experiment import run_experiment


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_baseline_and_hkd_train_end_to_end_and_export(family, tmp_path):
    overrides = ["data.image_size=32", *FAMILIES[family], "hkd.teacher_epochs=1"]
    baseline = run_experiment(tiny_config(tmp_path, *overrides, f"name={family}"))
    summary = json.loads((baseline / "summary.json").read_text())
    assert summary["backbone"] == FAMILIES[family][0].split("=")[1]
    assert summary["explanations"]["relevance_mass"] == summary["explanations"]["relevance_mass"]  # not NaN
    hkd = run_experiment(tiny_config(tmp_path, *overrides, "method.name=hkd", f"name={family}_hkd"))
    with open(hkd / "metrics.csv", newline="") as handle:
        distillation = [float(row["train/kd_mse"]) for row in csv.DictReader(handle)
                        if row.get("train/kd_mse")]
    assert distillation and max(distillation) > 0  # the student matched the teacher's feature map
    assert main(["export", str(hkd), "--format", "torchscript"]) == 0
    scripted = torch.jit.load(str(hkd / "export" / "model.pt"))
    student, preprocessing = load_model(hkd)
    assert sum(p.numel() for p in scripted.parameters()) == sum(p.numel() for p in student.net.parameters())
    image = preprocessing.load(next((tmp_path / "cache").rglob("images/*.png")))[None]
    with torch.no_grad():
        assert torch.allclose(scripted(image), student(image), atol=1e-4)
