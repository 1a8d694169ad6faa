"""Joint augmentation: every policy moves the prior with the image."""

import pytest
import torch
from omegaconf import OmegaConf

from hkd.data.transforms import apply_joint, build_augmentation


def _augment_cfg(policy, hflip=True):
    return OmegaConf.create({"policy": policy, "hflip": hflip, "degrees": 25,
                             "translate": 0.15, "scale": 0.2})


@pytest.mark.parametrize("policy", ["basic", "strong", "randaugment", "trivialaugment"])
def test_prior_stays_on_the_bright_box_through_augmentation(policy):
    torch.manual_seed(0)
    image = torch.zeros(1, 48, 48)
    image[:, 10:22, 26:40] = 1.0
    prior = (image > 0.5).float()
    transform = build_augmentation(_augment_cfg(policy))
    agreements = []
    for _ in range(20):
        out_image, out_prior = apply_joint(transform, image, prior)
        assert out_image.shape == (1, 48, 48) and out_prior.shape == (1, 48, 48)
        assert set(out_prior.unique().tolist()) <= {0.0, 1.0}
        # the box moved with the prior: photometric ops change its brightness, not where it is
        # (a draw that wipes out the box's contrast says nothing about where it went)
        if out_image.max() > out_image.min() + 0.2:
            moved = (out_image - out_image.min()) / (out_image.max() - out_image.min())
            agreements.append(((moved > 0.5) == (out_prior > 0.5)).float().mean().item())
    assert len(agreements) >= 15 and min(agreements) > 0.95, (policy, agreements)
