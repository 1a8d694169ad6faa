"""HKD's student loss, its distillation-weight schedule and the frozen teacher."""

import pytest
import torch

from hkd.methods.hkd import alpha_schedule, default_kd_epochs
from hkd.run.build import build_datamodule, build_method, build_module


def test_alpha_schedule_decays_linearly_then_stays_zero():
    values = [alpha_schedule(e, 0.5, 40) for e in range(60)]
    assert values[0] == 0.5 and values[20] == pytest.approx(0.25)
    assert values[39] == pytest.approx(0.5 / 40) and values[40:] == [0.0] * 20
    assert all(a > b for a, b in zip(values[:40], values[1:40]))


def test_default_kd_epochs_is_two_thirds(tiny):
    assert default_kd_epochs(None, 60) == 40 and default_kd_epochs(10, 60) == 10
    assert build_method(tiny("method.name=hkd", "trainer.max_epochs=60"), 4).kd_epochs == 40
    fixed = tiny("method.name=hkd", "trainer.max_epochs=60", "hkd.kd_epochs=10")
    assert build_method(fixed, 4).kd_epochs == 10


def _student_and_batch(tiny, *overrides):

    cfg = tiny("method.name=hkd", *overrides)
    datamodule = build_datamodule(cfg, roi_mode="blackout")
    datamodule.prepare_data()
    datamodule.setup()
    module = build_module(cfg, datamodule.classes)
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


def test_teacher_features_are_fp32_outside_autocast(tiny):
    from hkd.models.backbone import feature_map

    module, batch = _student_and_batch(tiny)
    with torch.no_grad():
        full = feature_map(module.method.teacher, batch["roi"])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            reduced = feature_map(module.method.teacher, batch["roi"])
        teacher = module.method.teacher_features(batch["roi"])
        out = module.method.training_loss(module, batch)
    assert reduced.dtype == torch.bfloat16  # what autocast would have given the teacher
    assert teacher.dtype == torch.float32
    torch.testing.assert_close(teacher, full, rtol=1e-4, atol=1e-5)  # its BatchNorms folded
    assert out["kd_mse"].dtype == torch.float32


def test_a_missing_teacher_checkpoint_is_an_error_not_a_random_teacher(tiny, tmp_path):
    from hkd.run.teacher import existing_teacher, train_teacher

    with pytest.raises(FileNotFoundError, match="random teacher"):
        existing_teacher(tmp_path / "gone.ckpt", {})  # e.g. a resumed run's teacher moved away
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        train_teacher(tiny("method.name=hkd", f"hkd.teacher_checkpoint={tmp_path / 'gone.ckpt'}"),
                      tmp_path, None, None)


def test_the_teacher_runs_with_folded_batch_norms_and_refolds_after_new_weights(tiny):
    from hkd.models.backbone import feature_map

    module, batch = _student_and_batch(tiny)
    method = module.method
    method.teacher_features(batch["roi"])
    folded = method.teacher_pass.folded["cpu"]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in method.teacher.modules())
    state = {k: v + 0.5 if v.is_floating_point() else v for k, v in module.state_dict().items()}
    module.load_state_dict(state)  # e.g. a resumed checkpoint: the folded copy must not go stale
    assert method.teacher_pass.folded == {}
    with torch.no_grad():
        fresh = feature_map(method.teacher, batch["roi"])
    torch.testing.assert_close(method.teacher_features(batch["roi"]), fresh, rtol=1e-4, atol=1e-4)
    method.teacher.load_state_dict(method.teacher.state_dict())  # as load_teacher does (stage 1)
    assert method.teacher_pass.folded == {}
