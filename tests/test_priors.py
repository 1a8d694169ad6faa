import numpy as np
import pytest
import torch
from conftest import make_folder_dataset
from omegaconf import OmegaConf

from hkd.data.datamodule import PneumoniaDataModule
from hkd.data.masking import black_out, box_sum, grow, roi_image
from hkd.data.transforms import apply_joint, build_augmentation


def _augment_cfg(policy, hflip=True):
    return OmegaConf.create({"policy": policy, "hflip": hflip, "degrees": 25,
                             "translate": 0.15, "scale": 0.2})


@pytest.mark.parametrize("policy", ["basic", "strong", "randaugment", "trivialaugment"])
def test_prior_stays_on_the_bright_box_through_augmentation(policy):
    torch.manual_seed(0)
    image = torch.zeros(1, 48, 48)
    image[:, 10:22, 26:40] = 1.0
    prior = (image > 0.5).float()
    transform = build_augmentation(_augment_cfg(policy))
    for _ in range(20):
        out_image, out_prior = apply_joint(transform, image, prior)
        assert out_image.shape == (1, 48, 48) and out_prior.shape == (1, 48, 48)
        # the box moved with the prior: photometric ops change its brightness, not where it is
        moved = (out_image - out_image.min()) / (out_image.max() - out_image.min() + 1e-6)
        if out_image.max() > out_image.min() + 0.2:
            agreement = ((moved > 0.5) == (out_prior > 0.5)).float().mean()
            assert agreement > 0.95, policy
        assert set(out_prior.unique().tolist()) <= {0.0, 1.0}


def test_dataset_prior_and_roi_align_after_random_affine(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data", n_per_class=6, size=40)
    cfg = tiny("data.format=folder", f"data.root={root}", "data.image_size=40",
               "augment.policy=basic", "augment.degrees=20", "augment.translate=0.15",
               "data.mean=[0.0]", "data.std=[1.0]")
    datamodule = PneumoniaDataModule(cfg, roi_mode="blackout")
    datamodule.prepare_data()
    datamodule.setup()
    torch.manual_seed(1)
    for position in range(len(datamodule.datasets["train"])):
        sample = datamodule.datasets["train"][position]
        bright, prior = sample["image"][0] > 0.6, sample["prior"][0] > 0.5
        assert (bright == prior).float().mean() > 0.97
        assert sample["roi"][0][~prior].abs().max() == 0  # outside the prior: blacked out
        inside = prior & bright
        assert torch.allclose(sample["roi"][0][inside], sample["image"][0][inside])
        assert sample["has_prior"] and isinstance(sample["idx"], int)


def test_roi_without_annotations_keeps_raw_image():
    image = torch.rand(1, 8, 8)
    assert torch.equal(roi_image(image, torch.zeros(1, 8, 8), has_prior=False), image)
    soft = roi_image(image, torch.full((1, 8, 8), 0.5), has_prior=True, mode="soft")
    assert torch.allclose(soft, image * 0.5)


@pytest.mark.parametrize("fill", ["zero", "mean", "blur", "noise", "inpaint"])
def test_black_out_changes_only_marked_pixels(fill):
    image = torch.rand(1, 16, 16)
    remove = torch.zeros(16, 16)
    remove[2:6, 3:9] = 1
    out = black_out(image, remove, fill, mean_value=0.3, generator=torch.Generator().manual_seed(0))
    keep = remove == 0
    assert torch.equal(out[0][keep], image[0][keep])
    if fill == "zero":
        assert out[0][~keep].abs().max() == 0
    if fill == "mean":
        assert torch.allclose(out[0][~keep], torch.tensor(0.3))
    if fill in ("blur", "noise", "inpaint"):
        assert not torch.equal(out[0][~keep], image[0][~keep])
        assert np.isfinite(out.numpy()).all()


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


def test_edit_margin_removes_the_marked_region_and_its_rim(tiny):
    """With imil.margin=1 an edit also replaces the one-pixel rim around the mark (where a resized
    object's edge survives); nothing further out changes."""
    from hkd.data.datamodule import PneumoniaDataModule

    datamodule = PneumoniaDataModule(tiny("imil.margin=1", "imil.fill=zero"))
    datamodule.prepare_data()
    datamodule.setup()
    dataset = datamodule.datasets["train_eval"]
    idx = int(dataset.indices[0])
    original = dataset.raw(idx)[0][0]
    mark = np.zeros(original.shape, dtype=bool)
    mark[10:12, 10:14] = True
    datamodule.set_overrides({idx: mark})
    edited = dataset.raw(idx)[0][0]
    assert (edited[9:13, 9:15] == 0).all()  # the mark and its rim
    outside = torch.ones_like(edited, dtype=torch.bool)
    outside[9:13, 9:15] = False
    assert torch.equal(edited[outside], original[outside])
