"""Counterfactual views of a validation image from its human prior (beyond both papers; after the
background swaps of Xiao et al. 2020, "Noise or Signal", ImageNet-9 *mixed-rand*).

With R the image's relevant region (its annotations, or the lungs ``data.prior_generator``
predicts), grown by a margin:

- ``swap``: the pixels outside R come from another validation image of a *different* class (its
  own R left out: there the fill is used), the label stays. A model that reads the image inside R
  keeps its decision; one that reads a shortcut outside R (a burned-in label, a marker, the
  scanner's border) follows the other image's class.
- ``roi``: the pixels outside R filled as HKD builds its teacher's ROI images.

Partners are drawn once per seed, so every validation epoch sees the same views."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hkd.data.masking import black_out, fill_values, grow

VIEWS = ("swap", "roi")


@dataclass(frozen=True)
class CounterfactualSettings:
    margin: int = 2  # pixels R grows by before its outside is replaced
    fill: str = "zero"  # what replaces pixels outside R in the roi view (and the partner's R)
    fill_mean: float = 0.5  # the ``mean`` fill's value


def swap_partners(labels: np.ndarray, seed: int) -> np.ndarray:
    """For each position, another position with a different label (drawn from the seed), or -1
    when every label is the same."""
    rng = np.random.default_rng([seed, 20201]) if seed >= 0 else np.random.default_rng()
    partners = np.full(len(labels), -1, dtype=np.int64)
    for position, label in enumerate(labels):
        others = np.flatnonzero(labels != label)
        if len(others):
            partners[position] = int(rng.choice(others))
    return partners


def partners_by_row(rows: np.ndarray, labels: np.ndarray, seed: int) -> dict[int, int]:
    """``swap_partners`` of these data set rows (``labels``: over the whole data set), as
    ``row -> partner row``; rows without a partner are left out."""
    partners = swap_partners(labels[rows], seed)
    return {int(row): int(rows[partner]) for row, partner in zip(rows, partners) if partner >= 0}


def region_mask(prior: torch.Tensor, margin: int) -> torch.Tensor:
    """The relevant region (H, W) as 0/1, grown by ``margin`` pixels."""
    return grow((prior.reshape(prior.shape[-2:]) > 0.5).float(), margin)


def swap_view(image: torch.Tensor, region: torch.Tensor, partner: torch.Tensor,
              partner_region: torch.Tensor, settings: CounterfactualSettings) -> torch.Tensor:
    """``image`` (C, H, W) inside ``region``; outside it ``partner``'s pixels where they lie outside
    the partner's own region, the fill where they lie inside it."""
    outside = 1 - region
    fill = fill_values(image, settings.fill, settings.fill_mean, None, outside * partner_region)
    return image * region + partner * outside * (1 - partner_region) + fill * outside * partner_region


def roi_view(image: torch.Tensor, region: torch.Tensor, settings: CounterfactualSettings) -> torch.Tensor:
    """``image`` inside ``region``, the fill outside (HKD's ROI image)."""
    return black_out(image, 1 - region, settings.fill, settings.fill_mean)


@dataclass
class CounterfactualViews:
    """What a validation dataset needs to add the views to its samples: the settings and each
    row's swap partner (``idx -> idx``; rows without one get no swap view)."""

    settings: CounterfactualSettings
    partners: dict[int, int]
