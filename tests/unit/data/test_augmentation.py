"""Joint augmentation: every policy moves the prior with the image."""

import pytest
import torch

from hkd.data.affine_range import AffineRange
from hkd.data.transforms import apply_joint, build_augmentation

WIDE = AffineRange(degrees=25, translate=0.15, scale=0.2)


@pytest.mark.parametrize("policy", ["basic", "strong", "randaugment", "trivialaugment", "pneuknownet"])
def test_prior_stays_on_the_bright_box_through_augmentation(policy):
    torch.manual_seed(0)
    image = torch.zeros(1, 48, 48)
    image[:, 10:22, 26:40] = 1.0
    prior = (image > 0.5).float()
    transform = build_augmentation(policy, WIDE, hflip=True)
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


def test_pneuknownet_policy_is_the_authors_pipeline():
    import albumentations as A

    from hkd.data.pneuknownet_augmentation import pneuknownet_compose

    compose = pneuknownet_compose(AffineRange(degrees=10, translate=0.1, scale=0.5), 3)
    steps = list(compose.transforms)
    assert isinstance(steps[0], A.Affine) and steps[0].p == 1.0
    assert steps[0].interpolation == 1 and steps[0].mask_interpolation == 0  # bilinear image, nearest masks
    assert [[type(t).__name__ for t in step.transforms] for step in steps[1:]] == [
        ["CLAHE", "RandomBrightnessContrast", "RandomGamma"], ["Sharpen", "Blur", "MotionBlur"],
        ["RandomBrightnessContrast", "HueSaturationValue"]]
    assert [step.p for step in steps[1:]] == [0.9, 0.9, 0.9]


def test_pneuknownet_policy_repeats_with_the_seed():
    image = torch.rand(1, 32, 32)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        transform = build_augmentation("pneuknownet", WIDE)
        draws.append(apply_joint(transform, image)[0])
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])
