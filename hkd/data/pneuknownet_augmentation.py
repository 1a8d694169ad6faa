"""``augment.policy=pneuknownet`` (their "strong") and ``pneuknownet_weak`` (their "weak": the
first step only): the authors' albumentations pipelines, reproduced with albumentations itself
(``pip install hkd[pneuknownet]``):

    ShiftScaleRotate(shift 0.1, scale 0.5, rotate 10°, p=1, border 0; bilinear)
    → OneOf[CLAHE, RandomBrightnessContrast, RandomGamma] p=0.9
    → OneOf[Sharpen, Blur(3), MotionBlur(3)] p=0.9
    → OneOf[RandomBrightnessContrast, HueSaturationValue] p=0.9

The shift, scale and rotation ranges come from ``augment.translate``, ``augment.scale`` and
``augment.degrees`` (pneuknownet.yaml sets the published ones). The masks (prior, irrelevant
regions) follow the geometric warp with nearest-neighbour sampling and skip the photometric steps.
On grayscale images hue and saturation shifts are off (they need colour); the value shift stays.
Albumentations draws from its own generator, seeded in each process from torch's seed (which
``seed`` and Lightning's per-worker seeding set), so runs repeat.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import tv_tensors

from hkd.data.affine_range import AffineRange
from hkd.errors import ConfigError


def pneuknownet_compose(affine: AffineRange, channels: int, strong: bool = True):
    try:
        import albumentations as A
        import cv2
    except ImportError as error:
        raise ConfigError("augment.policy=pneuknownet needs albumentations: "
                          "pip install 'hkd[pneuknownet]'") from error
    colour = channels == 3
    photometric = [
        A.OneOf([A.CLAHE(), A.RandomBrightnessContrast(), A.RandomGamma()], p=0.9),
        A.OneOf([A.Sharpen(), A.Blur(blur_limit=3), A.MotionBlur(blur_limit=3)], p=0.9),
        A.OneOf([A.RandomBrightnessContrast(),
                 A.HueSaturationValue(hue_shift_limit=20 if colour else 0,
                                      sat_shift_limit=30 if colour else 0)], p=0.9),
    ]
    return A.Compose([
        A.Affine(translate_percent=(-affine.translate, affine.translate),
                 scale=(1 - affine.scale, 1 + affine.scale),
                 rotate=(-affine.degrees, affine.degrees), interpolation=cv2.INTER_LINEAR,
                 mask_interpolation=cv2.INTER_NEAREST, border_mode=cv2.BORDER_CONSTANT, fill=0,
                 fill_mask=0, p=1.0),
        *(photometric if strong else []),
    ])


class PneuKnowNetAugmentation(torch.nn.Module):
    """The pipeline on a float image (C, H, W) in [0, 1] and its masks, as one joint draw."""

    def __init__(self, affine: AffineRange, channels: int, strong: bool = True) -> None:
        super().__init__()
        self.affine, self.channels, self.strong = affine, channels, strong
        self.compose = None
        self.seeded_from: int | None = None

    def forward(self, image, *masks):
        seed = torch.initial_seed()
        if self.compose is None or self.seeded_from != seed:  # a new process or a re-seeded one
            self.compose = pneuknownet_compose(self.affine, self.channels, self.strong)
            self.compose.set_random_seed(seed % 2**32)
            self.seeded_from = seed
        pixels = (image.as_subclass(torch.Tensor).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        out = self.compose(image=pixels, masks=[m.as_subclass(torch.Tensor)[0].numpy() for m in masks])
        warped = torch.from_numpy(out["image"].astype(np.float32) / 255).permute(2, 0, 1)
        return (tv_tensors.wrap(warped, like=image),
                *(tv_tensors.wrap(torch.from_numpy(np.asarray(m, np.float32))[None], like=mask)
                  for m, mask in zip(out["masks"], masks)))
