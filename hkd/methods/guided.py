"""Annotation-guided baselines from the literature, each ``CE + weight * penalty``.

The penalty uses only samples with annotations (``has_prior``); ``A = 1 - prior`` marks what the
expert said is irrelevant.

* ``rrr`` (Ross et al. 2017): squared input gradient of the summed log-probabilities inside A.
* ``gradmask`` (Simpson et al. 2019): absolute input gradient of the class contrast inside A; for
  more than two classes the contrast is ``logit_y - logsumexp(other logits)`` (our choice).
* ``actdiff`` (Viviano et al. 2021): L2 distance between the feature maps of x and of x with the
  pixels in A randomly permuted.
* ``cam_align`` (HINT-MSE / GRADIA-style): MSE between the differentiable Grad-CAM of the true
  class (max-normalised) and the prior resized to the feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hkd.explanations.cam import grad_cam
from hkd.methods.base import Method


def _annotated(batch: dict) -> torch.Tensor:
    return batch["has_prior"].bool()


def _outside(batch: dict) -> torch.Tensor:
    """A (B, 1, H, W): 1 outside the relevant regions, 0 for samples without annotations."""
    outside = 1.0 - (batch["prior"] > 0.5).float()
    return outside * _annotated(batch).float().view(-1, 1, 1, 1)


class GuidedMethod(Method):
    """CE plus a penalty computed from the batch, the logits and the features."""

    needs_input_grad = False
    mixes_batches = False

    def __init__(self, weight: float) -> None:
        super().__init__("image")
        self.weight = float(weight)

    def penalty(self, module, batch, x, features, logits) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, module, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["image"]
        if self.needs_input_grad:
            x = x.detach().requires_grad_(True)
        features, logits = module.features_and_logits(x)
        ce = module.cross_entropy(logits, batch["label"])
        if _annotated(batch).any():
            penalty = self.penalty(module, batch, x, features, logits)
        else:
            penalty = ce.detach() * 0
        loss = ce + self.weight * penalty
        return {"loss": loss, "ce": ce, self.name: penalty, "logits": logits}


class InputGradientMethod(GuidedMethod):
    """A penalty on the input gradient of a score, inside A (its loss needs double backward)."""

    needs_input_grad = True
    double_backward = True

    def score(self, batch: dict, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def magnitude(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, module, batch, x, features, logits):
        grad, = torch.autograd.grad(self.score(batch, logits), x, create_graph=True)
        return self.magnitude(_outside(batch) * grad).flatten(1).sum(1).mean()


class RRR(InputGradientMethod):
    """Squared gradient of the summed log-probabilities."""

    name = "rrr"

    def score(self, batch, logits):
        return F.log_softmax(logits, dim=1).sum()

    def magnitude(self, grad):
        return grad ** 2


class GradMask(InputGradientMethod):
    """Absolute gradient of the contrast between the true class and the others."""

    name = "gradmask"

    def score(self, batch, logits):
        labels = batch["label"]
        own = logits.gather(1, labels[:, None])[:, 0]
        others = logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
        return (own - torch.logsumexp(others, dim=1)).sum()

    def magnitude(self, grad):
        return grad.abs()


def shuffle_outside(x: torch.Tensor, outside: torch.Tensor, generator=None) -> torch.Tensor:
    """x with the pixels where ``outside`` is 1 randomly permuted among themselves, per sample."""
    shuffled = x.clone()
    for i in range(x.shape[0]):
        where = outside[i, 0].flatten().nonzero()[:, 0]
        if len(where) < 2:
            continue
        order = where[torch.randperm(len(where), generator=generator, device="cpu").to(where.device)]
        flat = shuffled[i].flatten(1)
        flat[:, where] = x[i].flatten(1)[:, order]
        shuffled[i] = flat.view_as(x[i])
    return shuffled


class ActDiff(GuidedMethod):
    name = "actdiff"

    def penalty(self, module, batch, x, features, logits):
        mask = _annotated(batch)
        masked = shuffle_outside(x[mask], _outside(batch)[mask])
        other, _ = module.features_and_logits(masked)
        return (features[mask] - other).flatten(1).norm(dim=1).mean()


class CamAlign(GuidedMethod):
    name = "cam_align"
    double_backward = True

    def penalty(self, module, batch, x, features, logits):
        mask = _annotated(batch)
        cam = grad_cam(features, logits, batch["label"], create_graph=True)[mask]
        cam = cam / (cam.flatten(1).amax(1).view(-1, 1, 1) + 1e-6)
        prior = F.adaptive_avg_pool2d((batch["prior"][mask] > 0.5).float(), cam.shape[-2:])[:, 0]
        return F.mse_loss(cam, prior)


GUIDED_METHODS = {cls.name: cls for cls in (RRR, GradMask, ActDiff, CamAlign)}  # for tests and docs
