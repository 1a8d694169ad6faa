"""Explanation metrics on CAMs: relevance mass and pointing game."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear."""
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def relevance_mass(cam: torch.Tensor, region: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Share of each map's (non-negative) energy inside ``region`` (B, H, W in {0, 1})."""
    cam = cam.clamp(min=0)
    total = cam.flatten(1).sum(1)
    inside = (cam * region).flatten(1).sum(1)
    return torch.where(total > eps, inside / (total + eps), torch.zeros_like(total))


def pointing_game(cam: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """1 where the map's maximum lies inside ``region``, else 0."""
    flat = cam.flatten(1).argmax(1)
    return region.flatten(1).gather(1, flat[:, None])[:, 0].float()
