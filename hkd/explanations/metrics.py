"""Explanation metrics on CAMs against expert regions: relevance mass and pointing game."""

from __future__ import annotations

import torch

from hkd.explanations.cam import upsample


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


def region_scores(cam: torch.Tensor, prior: torch.Tensor,
                  has_prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: relevance mass and pointing game of ``cam`` (B, h, w) against the expert regions
    (``prior``, B x 1 x H x W, upsampled to); NaN where the sample has none (``has_prior``)."""
    region = (prior[:, 0] > 0.5).float()
    cam = upsample(cam, tuple(region.shape[-2:]))
    annotated = has_prior.bool().to(cam.device)
    missing = torch.full((len(cam),), float("nan"), device=cam.device)
    return (torch.where(annotated, relevance_mass(cam, region), missing),
            torch.where(annotated, pointing_game(cam, region), missing))
