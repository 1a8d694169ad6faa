"""Grad-CAM: where a classifier looked, from its last feature map and the logits it produced."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def grad_cam(features: torch.Tensor, logits: torch.Tensor, target: torch.Tensor,
             create_graph: bool = False) -> torch.Tensor:
    """Grad-CAM (B, h, w) of class ``target`` from a feature map that produced ``logits``.

    With ``create_graph`` the map stays differentiable (for losses that shape it)."""
    score = logits.gather(1, target.view(-1, 1)).sum()
    grads, = torch.autograd.grad(score, features, create_graph=create_graph, retain_graph=True)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * features).sum(dim=1))


def upsample(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, h, w) -> (B, H, W), bilinear."""
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def explain_batch(module, batch: dict, of_prediction: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted probabilities and Grad-CAMs (B, H, W in [0, 1]) of the true class (or of the
    predicted class: where the model looked for what it said). ``module`` is a classifier with
    ``features_and_logits(x, compiled=False)`` (its feature map and logits in one eager pass),
    ``input_key`` and ``device``."""
    module.eval()
    x = batch[module.input_key].to(module.device)
    with torch.enable_grad():
        features, logits = module.features_and_logits(x, compiled=False)
        target = logits.argmax(1) if of_prediction else batch["label"].to(module.device)
        cam = grad_cam(features, logits, target).detach()
    cam = upsample(cam, tuple(x.shape[-2:]))
    cam = cam / cam.flatten(1).amax(1).clamp(min=1e-8).view(-1, 1, 1)
    return logits.detach().softmax(1).cpu(), cam.cpu()
