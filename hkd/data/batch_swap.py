"""Counterfactual training from the human prior (``augment.counterfactual``; beyond both papers,
after Xiao et al. 2020, "Noise or Signal": training on ImageNet-9 *mixed-rand* cuts a model's
reliance on the background).

With probability ``p`` a training image's pixels outside its relevant region R (its annotations,
or the lungs ``data.prior_generator`` predicts, grown by ``margin`` pixels) are replaced by another
image of the same batch, built exactly as the validation swap view (``hkd.data.counterfactual.
swap_view``: the partner's pixels outside the partner's own region, the fill inside it); the label
stays. Whatever lies outside R (a burned-in label, a corner tag, the scanner's border) then stops
predicting the class, and the swap views the counterfactual score reads stop being out of
distribution. Images without a region pass unchanged and are counted.

Built per batch on the device, next to MixUp/CutMix and with their RNG discipline: the draws come
from torch's global generator, which ``seed`` seeds (``lightning.seed_everything``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hkd.config.choices import SWAP_PARTNERS
from hkd.data.counterfactual import CounterfactualSettings, swap_view
from hkd.data.masking import grow


@dataclass(frozen=True)
class SwappedBatch:
    """A training batch after the swap, and what happened: how many images were swapped and how
    many were drawn but had no relevant region (they passed unchanged)."""

    batch: dict
    swapped: int
    without_region: int

    def logged(self, module) -> dict:
        """The batch, after logging the counts to ``module`` (a LightningModule) as sums per epoch:
        ``train/cf_swapped`` and ``train/cf_without_region``."""
        for key, count in (("swapped", self.swapped), ("without_region", self.without_region)):
            module.log(f"train/cf_{key}", float(count), on_step=False, on_epoch=True, reduce_fx="sum")
        return self.batch


@dataclass(frozen=True)
class BatchSwap:
    """``augment.counterfactual``: ``p`` the share of a batch's images swapped, ``partner`` where the
    outside comes from (``other_class``: an image of another class; ``any``: any other image), and
    the swap view's settings (``margin``, the fill of the partner's own region); ``mean`` and ``std``
    are the normalisation the batch's images carry (the swap is built on raw pixels)."""

    p: float
    partner: str
    settings: CounterfactualSettings
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.partner not in SWAP_PARTNERS:
            raise ValueError(f"augment.counterfactual.partner={self.partner!r}: "
                             f"one of {', '.join(SWAP_PARTNERS)}")

    def partners(self, labels: torch.Tensor) -> torch.Tensor:
        """For each image a random partner position from the global generator (-1: none allowed)."""
        size = len(labels)
        allowed = ~torch.eye(size, dtype=torch.bool)
        if self.partner == "other_class":
            allowed &= labels[:, None] != labels[None, :]
        scores = torch.rand(size, size).masked_fill(~allowed, -1.0)
        best = scores.argmax(1)
        return torch.where(allowed.any(1), best, torch.full_like(best, -1))

    def __call__(self, batch: dict) -> SwappedBatch:
        labels = batch["label"].cpu()
        drawn = torch.rand(len(labels)) < self.p
        partners = self.partners(labels)
        has_region = torch.as_tensor(batch["has_prior"]).cpu().bool()
        chosen = drawn & has_region & (partners >= 0)
        without_region = int((drawn & ~has_region).sum())
        if not chosen.any():
            return SwappedBatch(batch, 0, without_region)
        images = batch["image"]
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype)[:, None, None]
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype)[:, None, None]
        raw = images * std + mean
        priors = (batch["prior"] > 0.5).float().reshape(len(labels), *images.shape[-2:])
        regions = grow(priors, self.settings.margin) * has_region.to(images.device)[:, None, None].float()
        swapped = images.clone()
        for position in torch.nonzero(chosen).flatten().tolist():
            other = int(partners[position])
            view = swap_view(raw[position], regions[position], raw[other], regions[other], self.settings)
            swapped[position] = (view - mean) / std
        return SwappedBatch({**batch, "image": swapped}, int(chosen.sum()), without_region)

