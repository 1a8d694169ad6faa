"""Black out regions of an image: the teacher's ROI image (HKD) and clinician edits (IMIL)
use this one function, on raw pixels in [0, 1] before normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hkd.config.choices import FILLS


def box_sum(x: torch.Tensor, size: int) -> torch.Tensor:
    """Sum of ``x`` (C, H, W) over a ``size`` x ``size`` window around each pixel (zero outside),
    through an integral image: the same cost at any window size."""
    r = size // 2
    padded = F.pad(x, [r + 1, r, r + 1, r])
    integral = padded.cumsum(-1).cumsum(-2)
    height, width = x.shape[-2:]
    return (integral[..., size:size + height, size:size + width] - integral[..., :height, size:size + width]
            - integral[..., size:size + height, :width] + integral[..., :height, :width])


def inpaint(image: torch.Tensor, remove: torch.Tensor,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Removed pixels from their surroundings: the mean of the kept pixels in the smallest window
    (3, 7, 15, ... px) that reaches any, plus noise with the kept pixels' fine-grain spread. The
    filled patch has no flat spot or edge a model could find, unlike zero/mean/noise fills, which
    leave a visible rectangle where the removed region was."""
    kept = (remove < 0.5).expand_as(image)
    if not kept.any():
        return torch.full_like(image, float(image.mean()))
    keep = kept.to(image.dtype)
    masked = image * keep

    def window_mean(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean of the kept pixels in each ``size`` window, and where the window holds any."""
        weight = box_sum(keep, size)
        return box_sum(masked, size) / weight.clamp_min(1e-6), weight > 0.5

    smooth, reached = window_mean(3)
    filled, done = torch.where(reached & ~kept, smooth, 0.0), kept | reached
    size = 7
    while not done.all() and size < 4 * max(image.shape[-2:]):
        local, reached = window_mean(size)
        filled = torch.where(reached & ~done, local, filled)
        done = done | reached
        size = 2 * size + 1
    # x - mean3x3(x) of white noise has std sqrt(8/9) of the noise's
    spread = float((image - smooth)[kept].std()) / (8 / 9) ** 0.5 if kept.sum() > 1 else 0.0
    noise = torch.randn(image.shape, generator=generator, dtype=image.dtype).to(image.device)
    return (filled + spread * noise).clamp(0, 1)




def zero_fill(image: torch.Tensor, remove: torch.Tensor, mean_value: float, generator) -> torch.Tensor:
    return torch.zeros_like(image)


def mean_fill(image: torch.Tensor, remove: torch.Tensor, mean_value: float, generator) -> torch.Tensor:
    return torch.full_like(image, mean_value)


def blur_fill(image: torch.Tensor, remove: torch.Tensor, mean_value: float, generator) -> torch.Tensor:
    kernel = max(3, (min(image.shape[-2:]) // 8) | 1)
    padded = F.pad(image[None], [kernel // 2] * 4, mode="replicate")
    return F.avg_pool2d(padded, kernel, stride=1)[0]


def noise_fill(image: torch.Tensor, remove: torch.Tensor, mean_value: float, generator) -> torch.Tensor:
    noise = torch.rand(image.shape, generator=generator, dtype=image.dtype)
    return noise.to(image.device)


def inpaint_fill(image: torch.Tensor, remove: torch.Tensor, mean_value: float, generator) -> torch.Tensor:
    return inpaint(image, remove, generator)


def fill_values(image: torch.Tensor, fill: str, mean_value: float = 0.5,
                generator: torch.Generator | None = None,
                remove: torch.Tensor | None = None) -> torch.Tensor:
    """What replaces blacked-out pixels, per pixel, same shape as ``image`` (C, H, W);
    ``inpaint`` needs the (H, W) ``remove`` mask."""
    if fill == "inpaint" and remove is None:
        raise ValueError("the inpaint fill needs the mask of removed pixels")
    return FILLS[fill](image, remove, mean_value, generator)


def black_out(image: torch.Tensor, remove: torch.Tensor, fill: str = "zero",
              mean_value: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """``image`` (C, H, W) with the pixels where ``remove`` (H, W or 1, H, W) > 0.5 replaced."""
    remove = (remove.reshape(image.shape[-2:]) > 0.5).to(image.dtype)
    return image * (1 - remove) + fill_values(image, fill, mean_value, generator, remove) * remove


def grow(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """``mask`` (H, W), or a stack of them (..., H, W), with every region grown by ``pixels`` in
    each direction (a square dilation), so the resampled edge of a marked object is removed with it."""
    if pixels <= 0:
        return mask
    flat = mask.float().reshape(-1, 1, *mask.shape[-2:])
    grown = F.max_pool2d(flat, 2 * pixels + 1, stride=1, padding=pixels)
    return grown.reshape(mask.shape).to(mask.dtype)


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
