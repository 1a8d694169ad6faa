"""Counterfactual training (augment.counterfactual): the outside of an image's region comes from
another image of the batch, exactly as the validation swap view builds it; the label and the
region's pixels stay; images without a region pass and are counted; the draws follow the seed."""

import lightning as L
import pytest
import torch

from hkd.data.batch_swap import BatchSwap
from hkd.data.counterfactual import CounterfactualSettings, swap_view

MEAN, STD = (0.5,), (0.25,)


def batch(n: int = 6, size: int = 16) -> dict:
    generator = torch.Generator().manual_seed(0)
    raw = torch.rand(n, 1, size, size, generator=generator)
    prior = torch.zeros(n, 1, size, size)
    prior[:, :, 4:12, 4:12] = 1  # the region: a central square
    return {"image": (raw - MEAN[0]) / STD[0], "prior": prior, "label": torch.tensor([0, 1, 2, 0, 1, 2][:n]),
            "has_prior": torch.ones(n, dtype=torch.bool), "idx": torch.arange(n)}


def swap(p: float = 1.0, partner: str = "other_class", margin: int = 0, fill: str = "zero") -> BatchSwap:
    return BatchSwap(p, partner, CounterfactualSettings(margin=margin, fill=fill), MEAN, STD)


def test_every_drawn_image_is_the_validation_swap_view_of_a_partner_of_another_class():
    before = batch()
    after = swap()(before)
    assert after.swapped == 6 and after.without_region == 0
    assert torch.equal(after.batch["label"], before["label"])  # the label stays
    raw = before["image"] * STD[0] + MEAN[0]
    region = before["prior"][0, 0]
    for i in range(6):
        new = after.batch["image"][i]
        assert torch.allclose(new[:, 4:12, 4:12], before["image"][i, :, 4:12, 4:12])  # R untouched
        assert not torch.allclose(new, before["image"][i])  # the outside changed
        settings = CounterfactualSettings(margin=0)
        views = [(swap_view(raw[i], region, raw[j], region, settings) - MEAN[0]) / STD[0] for j in range(6)]
        matches = [j for j, view in enumerate(views) if torch.allclose(new, view, atol=1e-5)]
        assert matches and all(before["label"][j] != before["label"][i] for j in matches)


def test_without_a_region_an_image_passes_unchanged_and_is_counted():
    before = batch()
    before["has_prior"][[1, 4]] = False
    after = swap()(before)
    assert after.swapped == 4 and after.without_region == 2
    for i in (1, 4):
        assert torch.equal(after.batch["image"][i], before["image"][i])


def test_p_is_the_share_drawn_and_the_seed_fixes_the_draws():
    L.seed_everything(3)
    first = swap(p=0.5)(batch())
    L.seed_everything(3)
    again = swap(p=0.5)(batch())
    assert torch.equal(first.batch["image"], again.batch["image"]) and first.swapped == again.swapped
    assert swap(p=0.0)(batch()).swapped == 0
    L.seed_everything(0)
    counts = [swap(p=0.5)(batch()).swapped for _ in range(200)]
    assert sum(counts) / (200 * 6) == pytest.approx(0.5, abs=0.05)


def test_a_batch_of_one_class_has_no_other_class_partner_but_any_finds_one():
    one_class = {**batch(), "label": torch.zeros(6, dtype=torch.long)}
    assert swap(partner="other_class")(one_class).swapped == 0
    assert swap(partner="any")(one_class).swapped == 6


def test_the_margin_grows_the_kept_region():
    before = batch()
    after = swap(margin=2)(before)
    assert torch.allclose(after.batch["image"][:, :, 2:14, 2:14], before["image"][:, :, 2:14, 2:14])


def test_an_unknown_partner_is_refused_by_name():
    with pytest.raises(ValueError, match="augment.counterfactual.partner='nearest'"):
        swap(partner="nearest")
