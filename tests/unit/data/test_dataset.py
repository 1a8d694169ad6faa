"""The dataset: prior, ROI image and image stay aligned through augmentation."""

import torch
from conftest import make_folder_dataset

from hkd.run.build import build_datamodule


def test_dataset_prior_and_roi_align_after_random_affine(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data", n_per_class=6, size=40)
    cfg = tiny("data.format=folder", f"data.root={root}", "data.image_size=40",
               "augment.policy=basic", "augment.degrees=20", "augment.translate=0.15",
               "data.mean=[0.0]", "data.std=[1.0]")
    datamodule = build_datamodule(cfg, roi_mode="blackout")
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
