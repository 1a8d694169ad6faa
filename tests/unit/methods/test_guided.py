"""Each annotation-guided penalty is ~0 when the model only looks inside the prior and grows
when it looks outside."""

import pytest
import torch
from torch import nn

from hkd.methods.guided import GUIDED_METHODS, shuffle_outside


class _Net(nn.Module):
    """A fixed 'model' whose class-1 logit reads one 4x4 patch of the image."""

    def __init__(self, patch: tuple[slice, slice]) -> None:
        super().__init__()
        self.patch = patch
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward_features(self, x):
        weight = torch.zeros_like(x[:1])
        weight[..., self.patch[0], self.patch[1]] = 1.0
        return self.scale * x * weight  # (B, 1, H, W) "feature map"

    def forward_head(self, features):
        score = features.flatten(1).sum(1, keepdim=True)
        return torch.cat([-score, score], dim=1)


class _Module:
    def __init__(self, net):
        self.net = net

    def features_and_logits(self, x):
        features = self.net.forward_features(x)
        return features, self.net.forward_head(features)

    def cross_entropy(self, logits, labels, soft=None):
        return nn.functional.cross_entropy(logits, labels)


def _batch():
    torch.manual_seed(0)
    prior = torch.zeros(4, 1, 16, 16)
    prior[:, :, 2:8, 2:8] = 1
    return {"image": torch.rand(4, 1, 16, 16) + 0.5, "label": torch.tensor([1, 1, 1, 1]),
            "prior": prior, "has_prior": torch.ones(4, dtype=torch.bool)}


@pytest.mark.parametrize("name", sorted(GUIDED_METHODS))
def test_penalty_small_inside_prior_large_outside(name):
    batch = _batch()
    inside = GUIDED_METHODS[name](1.0).training_loss(_Module(_Net((slice(2, 8), slice(2, 8)))), batch)
    outside = GUIDED_METHODS[name](1.0).training_loss(_Module(_Net((slice(9, 15), slice(9, 15)))), batch)
    assert inside[name].item() < 1e-3 + 0.15 * outside[name].item(), (inside[name], outside[name])
    assert outside[name].item() > 1e-3
    assert torch.isfinite(outside["loss"])
    outside["loss"].backward()  # differentiable through the penalty


@pytest.mark.parametrize("name", sorted(GUIDED_METHODS))
def test_penalty_ignores_samples_without_annotations(name):
    batch = _batch()
    batch["has_prior"] = torch.zeros(4, dtype=torch.bool)
    out = GUIDED_METHODS[name](1.0).training_loss(_Module(_Net((slice(10, 14), slice(10, 14)))), batch)
    assert out[name].item() == 0 and out["loss"].item() == pytest.approx(out["ce"].item())


def test_shuffle_outside_keeps_inside_and_permutes_outside():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    outside = torch.ones(2, 1, 6, 6)
    outside[:, :, 1:3, 1:3] = 0
    shuffled = shuffle_outside(x, outside, torch.Generator().manual_seed(0))
    assert torch.equal(shuffled[:, :, 1:3, 1:3], x[:, :, 1:3, 1:3])
    assert not torch.equal(shuffled, x)
    assert torch.equal(shuffled.flatten(1).sort(1).values, x.flatten(1).sort(1).values)
