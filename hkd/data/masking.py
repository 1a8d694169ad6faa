"""Black out regions of an image: the teacher's ROI image (HKD) and clinician edits (IMIL)
use this one function, on raw pixels in [0, 1] before normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FILLS = ("zero", "mean", "blur", "noise")


def fill_values(image: torch.Tensor, fill: str, mean_value: float = 0.5,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """What replaces blacked-out pixels, per pixel, same shape as ``image`` (C, H, W)."""
    if fill == "zero":
        return torch.zeros_like(image)
    if fill == "mean":
        return torch.full_like(image, mean_value)
    if fill == "blur":
        kernel = max(3, (min(image.shape[-2:]) // 8) | 1)
        padded = F.pad(image[None], [kernel // 2] * 4, mode="replicate")
        return F.avg_pool2d(padded, kernel, stride=1)[0]
    if fill == "noise":
        noise = torch.rand(image.shape, generator=generator, dtype=image.dtype)
        return noise.to(image.device)
    raise ValueError(f"unknown fill '{fill}': use one of {', '.join(FILLS)}")


def black_out(image: torch.Tensor, remove: torch.Tensor, fill: str = "zero",
              mean_value: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """``image`` (C, H, W) with the pixels where ``remove`` (H, W or 1, H, W) > 0.5 replaced."""
    remove = (remove.reshape(image.shape[-2:]) > 0.5).to(image.dtype)
    return image * (1 - remove) + fill_values(image, fill, mean_value, generator) * remove


def roi_image(image: torch.Tensor, prior: torch.Tensor, has_prior: bool, mode: str = "blackout",
              fill: str = "zero", mean_value: float = 0.5) -> torch.Tensor:
    """The HKD teacher's input. ``blackout``: pixels outside the relevant regions replaced;
    ``soft``: image times the (blurred) prior. Without annotations the raw image is kept, so
    that an empty ROI can't become a class shortcut."""
    if not has_prior:
        return image
    if mode == "blackout":
        return black_out(image, 1.0 - (prior > 0.5).float(), fill, mean_value)
    if mode == "soft":
        return image * prior.reshape(1, *image.shape[-2:])
    raise ValueError(f"unknown ROI mode '{mode}': use blackout or soft")
