import json

import pytest
import torch

from hkd.data.datamodule import PneumoniaDataModule
from hkd.methods.hkd import alpha_schedule, kd_epochs
from hkd.models.lit_module import ClassifierModule
from hkd.train import run_experiment


def test_alpha_schedule_decays_linearly_then_stays_zero():
    values = [alpha_schedule(e, 0.5, 40) for e in range(60)]
    assert values[0] == 0.5 and values[20] == pytest.approx(0.25)
    assert values[39] == pytest.approx(0.5 / 40) and values[40:] == [0.0] * 20
    assert all(a > b for a, b in zip(values[:40], values[1:40]))


def test_default_kd_epochs_is_two_thirds(tiny):
    assert kd_epochs(tiny("trainer.max_epochs=60")) == 40
    assert kd_epochs(tiny("trainer.max_epochs=60", "hkd.kd_epochs=10")) == 10


def _student_and_batch(tiny, *overrides):
    from omegaconf import OmegaConf

    cfg = tiny("method.name=hkd", *overrides)
    datamodule = PneumoniaDataModule(cfg, roi_mode="blackout")
    datamodule.prepare_data()
    datamodule.setup()
    module = ClassifierModule(OmegaConf.to_container(cfg), datamodule.classes)
    batch = next(iter(datamodule.train_dataloader()))
    return module, batch


def test_student_loss_mixes_mse_and_ce_with_one_student_pass(tiny, monkeypatch):
    module, batch = _student_and_batch(tiny)
    calls = []
    original = module.net.forward_features
    monkeypatch.setattr(module.net, "forward_features", lambda x: calls.append(1) or original(x))
    out = module.method.training_loss(module, batch)
    assert len(calls) == 1  # features and logits from one forward pass of the student
    assert out["alpha"].item() == pytest.approx(0.5)
    assert out["loss"].item() == pytest.approx(0.5 * out["kd_mse"].item() + 0.5 * out["ce"].item(), rel=1e-5)


def test_teacher_is_frozen_and_stays_in_eval_mode(tiny):
    module, batch = _student_and_batch(tiny)
    before = {k: v.clone() for k, v in module.method.teacher.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5)
    module.train()
    assert not module.method.teacher.training
    for _ in range(2):
        loss = module.method.training_loss(module, batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = module.method.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert all(p.grad is None for p in module.method.teacher.parameters())
    student_grads = [p.grad for p in module.net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in student_grads)


def test_two_stage_run_records_teacher_and_student(tiny):
    run_dir = run_experiment(tiny("method.name=hkd", "trainer.max_epochs=2", "hkd.teacher_epochs=1"))
    summary = json.loads((run_dir / "summary.json").read_text())
    teacher = json.loads((run_dir / "teacher" / "summary.json").read_text())
    assert summary["method"] == "hkd" and summary["teacher"]["best_checkpoint"].startswith(str(run_dir))
    assert "annotations at test time" in teacher["note"] and "accuracy" in teacher["test_on_roi"]
    assert (run_dir / "teacher" / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "teacher" / "metrics.csv").is_file()
    student = torch.load(summary["best_checkpoint"], weights_only=False)["state_dict"]
    teacher_ckpt = torch.load(teacher["best_checkpoint"], weights_only=False)["state_dict"]
    for key, value in teacher_ckpt.items():  # the frozen teacher inside the student is stage 1's
        if key.startswith("net."):
            assert torch.equal(student["method.teacher." + key[4:]], value)
    # a trained teacher can be reused by another run
    reused = run_experiment(tiny("method.name=hkd", "trainer.max_epochs=1",
                                 f"hkd.teacher_checkpoint={teacher['best_checkpoint']}"))
    assert not (reused / "teacher").exists()
    assert json.loads((reused / "summary.json").read_text())["teacher"]["reused"]


def test_roi_fraction_and_predicted_priors(tiny):
    cfg = tiny("method.name=hkd", "hkd.roi_fraction=0.25")
    datamodule = PneumoniaDataModule(cfg, roi_mode="blackout")
    datamodule.prepare_data()
    datamodule.setup()
    train = datamodule.datasets["train"].indices
    assert datamodule.has_prior[train].sum() == 10  # 25% of the 40 annotated training images
    assert datamodule.has_prior[datamodule.datasets["test"].indices].all()
    run_dir = run_experiment(tiny("method.name=hkd", "hkd.roi_fraction=0.25", "hkd.prior=predicted",
                                  "hkd.teacher_epochs=1", "prior_generator.epochs=2"))
    summary = json.loads((run_dir / "summary.json").read_text())
    generator = summary["prior_generator"]
    assert generator["n_train"] == 10 and 0 <= generator["val_dice"] <= 1
    assert (run_dir / "prior_generator" / "metrics.csv").is_file()
