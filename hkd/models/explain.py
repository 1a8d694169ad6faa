"""Explanation metrics on CAMs: relevance mass and pointing game."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hkd.models.backbone import grad_cam


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


def explain_batch(module, batch: dict, of_prediction: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted probabilities and Grad-CAMs (B, H, W in [0, 1]) of the true class (or of the
    predicted class: where the model looked for what it said)."""
    module.eval()
    x = batch[module.input_key].to(module.device)
    with torch.enable_grad():
        features = module.net.forward_features(x).detach().requires_grad_(True)
        logits = module.net.forward_head(features)
        target = logits.argmax(1) if of_prediction else batch["label"].to(module.device)
        cam = grad_cam(features, logits, target).detach()
    cam = upsample(cam, tuple(x.shape[-2:]))
    cam = cam / cam.flatten(1).amax(1).clamp(min=1e-8).view(-1, 1, 1)
    return logits.detach().softmax(1).cpu(), cam.cpu()
