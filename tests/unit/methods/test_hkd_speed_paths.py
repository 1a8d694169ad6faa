"""Every speed path of HKD's frozen teacher gives the student the same distillation loss and the
same gradient as the plain teacher pass (``teacher.forward_features`` in eval mode, as the first
implementation ran it), on the same batch: BatchNorms folded, channels-last weights, both (the
default), features read from the cache, and the teacher skipped once the weight reaches zero.
Comparing the teacher's output alone would not catch a path that hands the loss another tensor
(a stale copy, a wrong row of the cache, a layout the loss reads wrongly)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hkd.methods import Method
from hkd.models.backbone import features_and_logits
from hkd.models.classifier import ClassifierModule
from hkd.models.frozen import FrozenFeatures, channels_last_copy, fold_batch_norms, inference_copy
from hkd.run.build import build_datamodule, build_method, build_module
from hkd.run.teacher import cache_teacher_features, existing_teacher
from tests.conftest import tiny_config, trained_looking

OVERRIDES = ("method.name=hkd", "augment.policy=none", "hkd.cache_teacher_features=true")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Built once for the module: the datamodule, a training batch, a stage-1 teacher checkpoint
    with non-trivial BatchNorm statistics, and the configuration."""
    tmp = tmp_path_factory.mktemp("hkd_speed_paths")
    cfg = tiny_config(tmp, *OVERRIDES)
    datamodule = build_datamodule(cfg, roi_mode="blackout")
    datamodule.prepare_data()
    datamodule.setup()
    teacher = build_module(cfg, datamodule.classes, Method("roi"))
    trained_looking(teacher.net)
    checkpoint = tmp / "teacher.ckpt"
    torch.save({"hyper_parameters": dict(teacher.hparams), "state_dict": teacher.state_dict()}, checkpoint)
    batch = next(iter(datamodule.train_dataloader()))
    return cfg, datamodule, batch, checkpoint


@pytest.fixture
def student(prepared):
    """A new student (per test) whose teacher is loaded from the stage-1 checkpoint."""
    cfg, datamodule, batch, checkpoint = prepared
    method = build_method(cfg, len(datamodule.classes))
    method.load_teacher(existing_teacher(checkpoint, {}).weights)
    module = build_module(cfg, datamodule.classes, method).train()
    return module, datamodule, batch, cfg, checkpoint


def plain_loss(module: ClassifierModule, batch: dict, alpha: float) -> torch.Tensor:
    """The distillation loss with an unfolded NCHW teacher pass and no cache."""
    features, logits = features_and_logits(module.net, batch["image"])
    with torch.no_grad():
        target = module.method.teacher.forward_features(batch["roi"])
    ce = F.cross_entropy(logits, batch["label"])
    return alpha * F.mse_loss(features.flatten(1), target.flatten(1)) + (1 - alpha) * ce


def student_gradients(module: ClassifierModule, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(module.net.parameters())))


def assert_same_loss_and_gradient(module, batch_for_path, reference_batch, alpha: float) -> None:
    expected = plain_loss(module, reference_batch, alpha)
    expected_grads = student_gradients(module, expected)
    out = module.method.training_loss(module, batch_for_path)
    assert float(out["alpha"]) == pytest.approx(alpha)
    torch.testing.assert_close(out["loss"], expected, rtol=1e-5, atol=1e-6)
    for found, wanted in zip(student_gradients(module, out["loss"]), expected_grads, strict=True):
        torch.testing.assert_close(found, wanted, rtol=1e-4, atol=1e-6)


def no_fold(net, run):
    return net


@pytest.mark.parametrize("make_copy", [fold_batch_norms, lambda net, run: channels_last_copy(net),
                                       inference_copy, no_fold],
                         ids=["folded", "channels_last", "folded_channels_last", "unchanged"])
def test_each_teacher_copy_gives_the_plain_loss_and_gradient(student, make_copy):
    module, _, batch, _, _ = student
    method = module.method
    method.teacher_pass = FrozenFeatures(method.teacher, make_copy=make_copy)
    assert_same_loss_and_gradient(module, batch, batch, alpha=0.5)
    assert "cpu" in method.teacher_pass.folded  # the path under test ran


def test_the_default_teacher_pass_is_folded_and_channels_last(student):
    module, _, batch, _, _ = student
    module.method.teacher_features(batch["roi"])
    copy = module.method.teacher_pass.folded["cpu"]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules())
    assert any(m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
               for m in copy.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)


def test_cached_teacher_features_give_the_plain_loss_and_gradient(student):
    module, datamodule, batch, cfg, checkpoint = student
    cache = cache_teacher_features(cfg, datamodule, module.method, checkpoint)
    module.method.use_teacher_features(cache.features, cache.rows)
    cached = module.method.before_transfer({k: v for k, v in batch.items() if k != "roi"})
    assert "teacher_features" in cached and "roi" not in cached  # no teacher pass is possible
    assert_same_loss_and_gradient(module, cached, batch, alpha=0.5)


def test_a_skipped_teacher_at_zero_weight_gives_the_plain_loss_and_gradient(student):
    module, _, batch, _, _ = student
    module.method.kd_epochs = 0  # the weight has reached zero
    calls = []
    module.method.teacher_pass = lambda roi: calls.append(roi) or pytest.fail("teacher ran at weight 0")
    assert_same_loss_and_gradient(module, batch, batch, alpha=0.0)
    assert calls == []


def test_the_student_batch_carries_the_roi_image_the_teacher_was_trained_on(student):
    """The student's data builds ROI images for training only (the teacher's view, ``with_roi``, for
    every split): its training batches carry the same ROI images the teacher's view reads."""
    module, datamodule, batch, _, _ = student
    positions = [int(list(datamodule.datasets["train"].indices).index(int(i))) for i in batch["idx"]]
    before = torch.stack([datamodule.datasets["train"][p]["roi"] for p in positions])
    student_data = datamodule.with_roi(("train",))
    assert {name for name, d in student_data.datasets.items() if d.roi_mode} == {"train"}
    assert all(d.roi_mode for d in datamodule.datasets.values())  # the view left this one unchanged
    assert "roi" not in student_data.datasets["val"][0]
    after = torch.stack([student_data.datasets["train"][p]["roi"] for p in positions])
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    torch.testing.assert_close(before, batch["roi"], rtol=0, atol=0)
