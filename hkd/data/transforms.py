"""Joint augmentation of an image and its masks (prior, irrelevant regions).

torchvision ``transforms.v2`` moves ``tv_tensors.Mask`` with the image through every geometric
transform and leaves it out of the photometric ones, so priors stay aligned by construction.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from hkd.config.choices import POLICIES
from hkd.data.affine_range import AffineRange

GEOMETRIC_OPS = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}


class _MaskAware:
    """torchvision's RandAugment / TrivialAugment reject masks ("Inputs of type Mask are not
    supported", still in torchvision 0.29): apply the geometric ops they draw to the masks too
    (nearest neighbour), and the photometric ones to the image only. This overrides one protected
    hook (``_apply_image_or_video_transform``); there is no public one for it."""

    def forward(self, image, *masks):
        self._masks = list(masks)
        out = super().forward(image)
        masks, self._masks = self._masks, []
        return (out, *masks)

    def _apply_image_or_video_transform(self, image, transform_id, magnitude, interpolation, fill):
        if transform_id in GEOMETRIC_OPS:
            self._masks = [super(_MaskAware, self)._apply_image_or_video_transform(
                mask, transform_id, magnitude, v2.InterpolationMode.NEAREST, fill)
                for mask in self._masks]
        return super()._apply_image_or_video_transform(image, transform_id, magnitude,
                                                       interpolation, fill)


class JointRandAugment(_MaskAware, v2.RandAugment):
    pass


class JointTrivialAugment(_MaskAware, v2.TrivialAugmentWide):
    pass


class StackedRandomAffine(v2.RandomAffine):
    """RandomAffine drawn once and applied to the image and its masks in one warp: one sampling
    grid instead of one per tensor (the loader's main cost). The interpolation is RandomAffine's
    (nearest by default), the same for image and masks, so masks stay binary."""

    def forward(self, image, *masks):
        stacked = torch.cat([image.as_subclass(torch.Tensor), *(m.as_subclass(torch.Tensor) for m in masks)])
        params = self.make_params([image])
        warped = self.transform(tv_tensors.Image(stacked), params).as_subclass(torch.Tensor)
        parts = warped.split([image.shape[0], *(m.shape[0] for m in masks)])
        return (tv_tensors.wrap(parts[0], like=image),
                *(tv_tensors.wrap(part, like=mask) for part, mask in zip(parts[1:], masks)))


class AsUint8(torch.nn.Module):
    """Run a policy that needs uint8 images (RandAugment, TrivialAugment) on float images."""

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, image, *masks):
        as_uint8 = tv_tensors.wrap((image * 255).round().to(torch.uint8), like=image)
        out = self.policy(as_uint8, *masks)
        return (tv_tensors.wrap(out[0].float() / 255, like=image), *out[1:])




def random_affine(affine: AffineRange) -> StackedRandomAffine:
    return StackedRandomAffine(degrees=affine.degrees, translate=(affine.translate, affine.translate),
                               scale=(1 - affine.scale, 1 + affine.scale))


def no_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    return []


def basic_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    return [random_affine(affine)]


def strong_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    return [random_affine(affine),
            v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3)], p=0.9),
            v2.RandomApply([v2.GaussianBlur(3, sigma=(0.1, 1.0))], p=0.5)]


def randaugment_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    return [AsUint8(JointRandAugment())]


def trivialaugment_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    return [AsUint8(JointTrivialAugment())]


def pneuknownet_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    from hkd.data.pneuknownet_augmentation import PneuKnowNetAugmentation

    return [PneuKnowNetAugmentation(affine, channels)]


def pneuknownet_weak_policy(affine: AffineRange, channels: int) -> list[torch.nn.Module]:
    from hkd.data.pneuknownet_augmentation import PneuKnowNetAugmentation

    return [PneuKnowNetAugmentation(affine, channels, strong=False)]


DEFAULT_AFFINE = AffineRange()


def build_augmentation(policy: str, affine: AffineRange = DEFAULT_AFFINE, hflip: bool = False,
                       channels: int = 1) -> v2.Compose | None:
    """The training-time transform: optional flips, then the policy (a name in ``POLICIES``;
    None: nothing)."""
    steps: list[torch.nn.Module] = [v2.RandomHorizontalFlip()] if hflip else []
    steps += POLICIES[policy](affine, channels)
    return v2.Compose(steps) if steps else None


def apply_joint(transform: v2.Compose | None, image: torch.Tensor, *masks: torch.Tensor):
    """Apply one random draw of ``transform`` to the image and all masks together."""
    if transform is None:
        return (image, *masks)
    out = transform(tv_tensors.Image(image), *(tv_tensors.Mask(m) for m in masks))
    return tuple(t.as_subclass(torch.Tensor) for t in out)


def build_batch_mix(mixup: float, cutmix: float, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix (Beta(alpha); 0 = off) on whole training batches (one of them per batch
    when both are on)."""
    mixes = []
    if mixup > 0:
        mixes.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        mixes.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not mixes:
        return None
    return mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
