"""Folding a frozen network's BatchNorms into its convolutions keeps its function."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hkd.models.backbone import build_backbone, feature_map
from hkd.models.frozen import FrozenFeatures, conv_bn_pairs, fold_batch_norms, inference_copy
from tests.conftest import trained_looking


def test_a_timm_resnet_folds_every_batch_norm_and_computes_the_same_map(tiny):
    cfg = tiny()
    net = trained_looking(build_backbone(cfg.model, 4, 1, 32))
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    folded = fold_batch_norms(net, lambda model: feature_map(model, x))
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert batch_norms > 0 and len(conv_bn_pairs(net, lambda model: feature_map(model, x))) == batch_norms
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(feature_map(folded, x), feature_map(net, x), rtol=1e-4, atol=1e-4)
        other = torch.randn(2, 1, 32, 32)  # not the probe it was checked on
        torch.testing.assert_close(feature_map(folded, other), feature_map(net, other), rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is untouched


class ConvOutputUsedTwice(nn.Module):
    """bn(conv(x)) + conv(x): folding would change the second use."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


def test_a_convolution_whose_output_is_also_used_elsewhere_keeps_its_batch_norm():
    net = trained_looking(ConvOutputUsedTwice())
    x = torch.randn(2, 1, 8, 8)
    assert conv_bn_pairs(net, lambda model: model(x)) == [("conv", "bn")]  # looks foldable
    assert fold_batch_norms(net, lambda model: model(x)) is net  # but the check refuses


def test_only_an_eval_mode_network_is_folded():
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batch_norms(ConvOutputUsedTwice().train(), lambda model: model(torch.zeros(1, 1, 4, 4)))


def channels_last_convolutions(net: nn.Module) -> list[bool]:
    """Per 3x3 convolution with several input channels: are its weights channels-last only?"""
    convolutions = [m for m in net.modules()
                    if isinstance(m, nn.Conv2d) and m.in_channels > 1 and m.kernel_size == (3, 3)]
    return [m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous()
            for m in convolutions]


def test_the_frozen_teacher_runs_a_channels_last_copy_with_the_same_map(tiny):
    cfg = tiny()
    net = trained_looking(build_backbone(cfg.model, 4, 1, 32))
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    frozen = FrozenFeatures(net)
    assert frozen.folded == {}  # made at first use
    features = frozen(x)
    layouts = channels_last_convolutions(frozen.folded["cpu"])
    assert layouts and all(layouts)
    assert not any(channels_last_convolutions(net))  # the teacher itself keeps its layout
    assert features.is_contiguous()  # handed on in the usual layout
    with torch.no_grad():
        torch.testing.assert_close(features, feature_map(net, x), rtol=1e-4, atol=1e-4)


def test_a_network_that_cannot_be_folded_still_gets_its_own_channels_last_copy():
    net = trained_looking(ConvOutputUsedTwice())
    net.conv = nn.Conv2d(2, 3, 3, padding=1).eval()
    x = torch.randn(2, 2, 8, 8)
    copy = inference_copy(net, lambda model: model(x))
    assert copy is not net and any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    assert channels_last_convolutions(copy) == [True] and channels_last_convolutions(net) == [False]
    with torch.no_grad():
        torch.testing.assert_close(copy(x.contiguous(memory_format=torch.channels_last)), net(x))


def test_the_teacher_pass_keeps_fp32_under_autocast_unless_asked_to_run_in_it(tiny):
    net = trained_looking(build_backbone(tiny().model, 4, 1, 32)).eval()
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    exact = FrozenFeatures(net)(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outside = FrozenFeatures(net)(x)  # hkd.teacher_precision=fp32 (the default)
        inside = FrozenFeatures(net, autocast=True)(x)  # hkd.teacher_precision=autocast
    assert outside.dtype == inside.dtype == torch.float32
    torch.testing.assert_close(outside, exact)  # as if no autocast were around
    assert not torch.equal(inside, exact)  # computed in bf16 ...
    torch.testing.assert_close(inside, exact, rtol=0.05, atol=0.05 * float(exact.abs().max()))  # ... closely
