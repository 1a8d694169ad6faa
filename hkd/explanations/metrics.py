"""Explanation metrics on CAMs against expert regions: relevance mass and pointing game."""

from __future__ import annotations

import torch


def relevance_mass(cam: torch.Tensor, region: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Share of each map's (non-negative) energy inside ``region`` (B, H, W in {0, 1})."""
    cam = cam.clamp(min=0)
    total = cam.flatten(1).sum(1)
    inside = (cam * region).flatten(1).sum(1)
    return torch.where(total > eps, inside / (total + eps), torch.zeros_like(total))


def pointing_game(cam: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """1 where the map's maximum lies inside ``region``, else 0; an empty (all-zero or flat) map
    points nowhere and counts as a miss."""
    flat = cam.flatten(1)
    hit = region.flatten(1).gather(1, flat.argmax(1)[:, None])[:, 0].float()
    points = flat.amax(1) > flat.amin(1)
    return torch.where(points, hit, torch.zeros_like(hit))
