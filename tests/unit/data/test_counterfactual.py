"""Counterfactual views from the human prior: swap partners of another class, the swap keeps the
region and takes everything else from the partner (the shortcut tag included), the roi view fills
the outside, and IMIL's flip selection ranks flips first."""

import numpy as np
import torch

from hkd.data.counterfactual import CounterfactualSettings, scored_rows, swap_partners, swap_view
from hkd.imil.selection import choose, select_flips
from hkd.run.build import build_datamodule


def test_partners_have_another_class_and_come_from_the_seed():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    partners = swap_partners(labels, seed=3)
    assert all(labels[p] != label for p, label in zip(partners, labels))
    assert np.array_equal(partners, swap_partners(labels, seed=3))
    assert not np.array_equal(partners, swap_partners(labels, seed=4))
    assert (swap_partners(np.zeros(4, dtype=int), seed=0) == -1).all()  # one class: no partner


def test_control_partners_have_the_same_class_and_are_another_image():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    partners = swap_partners(labels, seed=3, same_class=True)
    positions = np.arange(len(labels))
    has = partners >= 0
    assert (labels[partners[has]] == labels[has]).all() and (partners[has] != positions[has]).all()
    assert list(np.flatnonzero(~has)) == [7]  # the only image of its class has no control partner


def test_the_swap_keeps_the_region_and_takes_the_rest_from_the_partner():
    image, partner = torch.full((1, 8, 8), 0.2), torch.full((1, 8, 8), 0.9)
    region, partner_region = torch.zeros(8, 8), torch.zeros(8, 8)
    region[2:5, 2:5] = 1
    partner_region[5:7, 5:7] = 1
    out = swap_view(image, region, partner, partner_region, CounterfactualSettings(fill="zero"))
    assert (out[0][region > 0] == 0.2).all()  # inside the image's region: the image
    outside_both = (region == 0) & (partner_region == 0)
    assert (out[0][outside_both] == 0.9).all()  # outside: the partner
    assert (out[0][partner_region > 0] == 0).all()  # the partner's own region: the fill, never its finding


def test_validation_samples_carry_views_that_move_the_shortcut_tag(tiny):
    datamodule = build_datamodule(tiny("counterfactual.enabled=true", "counterfactual.margin=1",
                                       "augment.policy=none"))
    datamodule.setup()
    val = datamodule.datasets["val"]
    sample = val[0]
    idx, partner = sample["idx"], val.counterfactual.partners[sample["idx"]]
    assert sample["has_region"] and val.labels[partner] != val.labels[idx]
    tag = np.asarray(val.cache.irrelevant[idx]) > 0  # the synthetic shortcut tag lies outside the findings
    partner_raw = val.normalize(val.original(partner))
    assert tag.any() and torch.allclose(sample["cf_swap"][0][torch.from_numpy(tag)],
                                        partner_raw[0][torch.from_numpy(tag)])  # the partner's tag now
    region = torch.from_numpy(np.asarray(val.cache.relevant[idx]) > 0)
    assert torch.allclose(sample["cf_swap"][0][region], sample["image"][0][region])
    assert torch.allclose(sample["cf_roi"][0][region], sample["image"][0][region])
    assert not torch.allclose(sample["cf_roi"][0][~region], sample["image"][0][~region])
    coverage = datamodule.counterfactual_coverage()
    assert coverage["val_images"] == len(val) == coverage["with_region"] + coverage["without_region"]


def test_a_fraction_of_the_validation_images_is_scored_per_class_from_the_seed(tiny):
    def scored(*overrides: str) -> tuple[set[int], dict]:
        datamodule = build_datamodule(tiny("counterfactual.enabled=true", *overrides))
        datamodule.setup()
        val = datamodule.datasets["val"]
        return {i for i in range(len(val)) if val[i]["has_region"]}, datamodule.counterfactual_coverage()

    everything, coverage = scored()
    half, half_coverage = scored("counterfactual.fraction=0.5")
    assert len(everything) == coverage["scored"] == coverage["with_region"]
    assert half < everything and half_coverage["scored"] == len(half)
    assert half == scored("counterfactual.fraction=0.5")[0]  # the same images every time for a seed
    assert half != scored("counterfactual.fraction=0.5", "seed=1")[0]


def test_the_scored_rows_keep_each_class_share():
    rows, labels = np.arange(20), np.array([0] * 10 + [1] * 6 + [2] * 4)
    chosen = scored_rows(rows, labels, 0.5, seed=0)
    assert [sum(labels[r] == k for r in chosen) for k in range(3)] == [5, 3, 2]
    assert scored_rows(rows, labels, 1.0, seed=0) == set(range(20))


def test_flip_selection_puts_flips_first_then_the_largest_drop_and_never_a_sample_without_region():
    idx = np.array([10, 11, 12, 13, 14])
    drops = np.array([0.5, 0.9, np.nan, 0.3, -0.1])
    flipped = np.array([False, False, True, True, False])
    assert select_flips(idx, drops, flipped, set(), 5) == [13, 11, 10]
    assert select_flips(idx, drops, flipped, {13}, 1) == [11]
    labels, predictions = np.array([0, 0, 0, 0, 0]), np.array([1, 0, 0, 0, 1])
    losses = np.array([2.0, 0.1, 0.1, 0.1, 3.0])
    both = choose("both", idx, labels, predictions, losses, drops, flipped, set(), 3)
    assert both == [14, 10, 13]  # two mispredictions (highest loss first), then the flip
