"""Removing regions: each fill, the inpaint fill's invisibility, the margin's dilation, ROI images."""

import pytest
import torch

from hkd.data.masking import FILLS, black_out, box_sum, grow, roi_image


def test_roi_without_annotations_keeps_raw_image():
    image = torch.rand(1, 8, 8)
    assert torch.equal(roi_image(image, torch.zeros(1, 8, 8), has_prior=False), image)
    soft = roi_image(image, torch.full((1, 8, 8), 0.5), has_prior=True, mode="soft")
    assert torch.allclose(soft, image * 0.5)


REMOVED = {  # what each fill puts in the removed pixels, checked against the original ones
    "zero": lambda out, original: bool((out == 0).all()),
    "mean": lambda out, original: torch.allclose(out, torch.tensor(0.3)),
    "blur": lambda out, original: not torch.equal(out, original) and bool(torch.isfinite(out).all()),
    "noise": lambda out, original: not torch.equal(out, original) and bool(torch.isfinite(out).all()),
    "inpaint": lambda out, original: not torch.equal(out, original) and bool(torch.isfinite(out).all()),
}


def test_every_fill_is_checked():
    assert set(REMOVED) == set(FILLS)


@pytest.mark.parametrize("fill", sorted(REMOVED))
def test_black_out_changes_only_marked_pixels(fill):
    image = torch.rand(1, 16, 16)
    remove = torch.zeros(16, 16)
    remove[2:6, 3:9] = 1
    out = black_out(image, remove, fill, mean_value=0.3, generator=torch.Generator().manual_seed(0))
    keep = remove == 0
    assert torch.equal(out[0][keep], image[0][keep])
    assert REMOVED[fill](out[0][~keep], image[0][~keep])


def test_box_sum_matches_a_direct_window_sum():
    x = torch.rand(2, 9, 13)
    for size in (3, 7, 15):
        r = size // 2
        padded = torch.nn.functional.pad(x, [r] * 4)
        direct = torch.stack([torch.stack([padded[:, i:i + size, j:j + size].sum((-2, -1))
                                           for j in range(13)], -1) for i in range(9)], -2)
        assert torch.allclose(box_sum(x, size), direct, atol=1e-4)


def test_inpaint_fill_leaves_no_visible_patch():
    """A tag on a noisy background: inpainting restores the background's level and grain, so the
    edited spot can't itself become a shortcut; the zero fill leaves a flat dark rectangle."""
    generator = torch.Generator().manual_seed(0)
    image = (0.3 + 0.02 * torch.randn(1, 48, 48, generator=generator)).clamp(0, 1)
    image[0, 5:12, 30:42] = 0.95  # a bright tag
    remove = torch.zeros(48, 48)
    remove[5:12, 30:42] = 1
    inside = remove > 0
    filled = black_out(image, remove, "inpaint", generator=torch.Generator().manual_seed(1))[0][inside]
    assert abs(float(filled.mean()) - 0.3) < 0.01
    assert 0.01 < float(filled.std()) < 0.04  # the background's grain (0.02), not flat
    zero = black_out(image, remove, "zero")[0][inside]
    assert abs(float(zero.mean()) - 0.3) > 0.25 and float(zero.std()) == 0
    everything = black_out(image, torch.ones(48, 48), "inpaint")  # nothing kept: the mean image
    assert torch.isfinite(everything).all()


def test_grow_dilates_each_region_by_whole_pixels():
    mask = torch.zeros(9, 9)
    mask[4, 4] = 1
    assert torch.equal(grow(mask, 0), mask)
    grown = grow(mask, 1)
    assert grown.sum() == 9 and grown[3:6, 3:6].all()
    assert grow(mask, 2).sum() == 25
