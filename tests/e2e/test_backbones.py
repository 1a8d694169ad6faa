"""Every timm family the README lists, as tiny instances: baseline and HKD train end to end, the
guided losses backpropagate, Grad-CAM is a real map on the logits' path, and export works."""

import csv
import json

import pytest
import torch
from conftest import tiny_config
from omegaconf import OmegaConf

from hkd import load_model
from hkd.cli import main
from hkd.config import load_config
from hkd.explanations.cam import explain_batch
from hkd.methods.guided import GUIDED_METHODS
from hkd.models.backbone import features_and_logits
from hkd.models.classifier import ClassifierModule
from hkd.run.build import build_module
from hkd.run.experiment import run_experiment

FAMILIES = {  # name -> overrides of a tiny instance (32 px input)
    "resnet": ["model.backbone=test_resnet"],
    "convnext": ["model.backbone=test_convnext"],
    "efficientnet": ["model.backbone=test_efficientnet"],
    "densenet": ["model.backbone=densenet121", "model.kwargs={growth_rate: 8, block_config: [2, 2, 2, 2]}",
                 "model.output_stride=null"],
    "vit": ["model.backbone=test_vit", "model.kwargs={patch_size: 8}"],
    "swin": ["model.backbone=swin_tiny_patch4_window7_224",
             "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 1], window_size: 4}"],
}
MAP_SIZE = {"resnet": 4, "convnext": 4, "efficientnet": 4, "densenet": 1, "vit": 4, "swin": 4}


def module_for(cfg, method: str = "baseline") -> ClassifierModule:
    cfg = OmegaConf.merge(cfg, {"method": {"name": method}})
    return build_module(cfg, ["a", "b", "c", "d"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_feature_map_is_nchw_on_the_logits_path_and_every_guided_loss_backpropagates(family):
    torch.manual_seed(0)
    cfg = load_config("quickstart", ["data.image_size=32", *FAMILIES[family]])
    module = module_for(cfg).eval()
    x = torch.randn(3, 1, 32, 32)
    features, logits = features_and_logits(module.net, x)
    gradient, = torch.autograd.grad(logits[:, 0].sum(), features, retain_graph=True)
    assert gradient.abs().sum() > 0  # the map lies on the logits' path (what Grad-CAM needs)
    size = MAP_SIZE[family]
    assert features.shape[0] == 3 and features.shape[-2:] == (size, size) and logits.shape == (3, 4)
    with torch.no_grad():
        assert torch.allclose(module.net(x), logits, atol=1e-5)  # the model's own forward
    probabilities, cams = explain_batch(module, {"image": x, "label": torch.tensor([0, 1, 2])})
    assert cams.shape == (3, 32, 32) and torch.isfinite(cams).all() and float(cams.amax()) <= 1
    prior = torch.zeros(3, 1, 32, 32)
    prior[:, :, 8:24, 8:24] = 1
    batch = {"image": x, "label": torch.tensor([0, 1, 2]), "prior": prior,
             "has_prior": torch.ones(3, dtype=torch.bool)}
    for name in sorted(GUIDED_METHODS):
        module = module_for(cfg, name).train()
        out = module.method.training_loss(module, batch)
        out["loss"].backward()
        assert torch.isfinite(out[name]) and out[name] >= 0, (family, name)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.net.parameters())


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
