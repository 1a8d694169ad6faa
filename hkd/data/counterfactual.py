"""Counterfactual views of a validation image from its human prior (beyond both papers; after the
background swaps of Xiao et al. 2020, "Noise or Signal", ImageNet-9 *mixed-rand*).

With R the image's relevant region (its annotations, or the lungs ``data.prior_generator``
predicts), grown by a margin:

- ``swap``: the pixels outside R come from another validation image of a *different* class (its
  own R left out: there the fill is used), the label stays. A model that reads the image inside R
  keeps its decision; one that reads a shortcut outside R (a burned-in label, a marker, the
  scanner's border) follows the other image's class.
- ``roi``: the pixels outside R filled as HKD builds its teacher's ROI images.
- ``swap_same`` (the audit's control, beyond Xiao et al.): the swap with a partner of the *same*
  class. Swapping any outside changes some decisions (the prior leaves out evidence, a swapped image
  is no image a scanner makes); only the flips beyond the control's follow what the outside says
  about the class: the *shortcut flip rate*.

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
    fraction: float = 1.0  # share of the split's images seen through the views (``scored_rows``)


def swap_partners(labels: np.ndarray, seed: int, same_class: bool = False) -> np.ndarray:
    """For each position, another position with a different label (with ``same_class``: the same
    label) drawn from the seed, or -1 when there is none."""
    stream = 20202 if same_class else 20201
    rng = np.random.default_rng([seed, stream]) if seed >= 0 else np.random.default_rng()
    partners = np.full(len(labels), -1, dtype=np.int64)
    positions = np.arange(len(labels))
    for position, label in enumerate(labels):
        others = np.flatnonzero((labels == label) & (positions != position)) if same_class \
            else np.flatnonzero(labels != label)
        if len(others):
            partners[position] = int(rng.choice(others))
    return partners


def partners_by_row(rows: np.ndarray, labels: np.ndarray, seed: int,
                    same_class: bool = False) -> dict[int, int]:
    """``swap_partners`` of these data set rows (``labels``: over the whole data set), as
    ``row -> partner row``; rows without a partner are left out."""
    partners = swap_partners(labels[rows], seed, same_class)
    return {int(row): int(rows[partner]) for row, partner in zip(rows, partners) if partner >= 0}


def scored_rows(rows: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> set[int]:
    """The rows seen through the views when only a ``fraction`` of them is (each class's share,
    at least one image of each, drawn from the seed): fewer forward passes per validation epoch."""
    if fraction >= 1:
        return {int(row) for row in rows}
    rng = np.random.default_rng([seed, 20203]) if seed >= 0 else np.random.default_rng()
    chosen: set[int] = set()
    for label in np.unique(labels[rows]):
        mine = rows[labels[rows] == label]
        size = max(1, round(fraction * len(mine)))
        chosen.update(int(row) for row in rng.choice(mine, size, replace=False))
    return chosen


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
    row's swap partner (``idx -> idx``; rows without one get no swap view), and for the audit's
    control each row's same-class partner (``swap_same``)."""

    settings: CounterfactualSettings
    partners: dict[int, int]
    same_class_partners: dict[int, int] | None = None
