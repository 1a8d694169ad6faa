"""The prior generator's batch prediction reads the same images a sample would carry."""

from __future__ import annotations

import numpy as np
import torch

from hkd.models.prior_generator import PriorGeneratorModule, predict_masks
from hkd.run.build import build_datamodule


def test_predicted_masks_are_those_of_each_samples_own_image(tiny):
    cfg = tiny("method.name=hkd", "counterfactual.enabled=true")
    datamodule = build_datamodule(cfg, roi_mode=cfg.hkd.roi_mode)
    datamodule.setup("fit")
    dataset = datamodule.training_images().evaluation_dataset(edited=False)
    torch.manual_seed(0)
    module = PriorGeneratorModule(1, "irrelevant", (4, 4, 8, 8, 16, 4))
    positions = [3, 0, 7, 5]
    masks, confidence = predict_masks(module, dataset, positions, threshold=0.5, batch_size=3)
    rows = [int(dataset.indices[p]) for p in positions]
    assert list(masks) == rows  # keyed by data set row, in the order asked
    batched = dataset.images_for(np.array(rows))
    assert torch.equal(batched, torch.stack([dataset[p]["image"] for p in positions]))  # the same images
    for position, row in zip(positions, rows):
        probability = module.predict_probabilities(dataset[position]["image"][None])[0]  # one sample alone
        settled = (probability - 0.5).abs() > 1e-4  # pixels a different batch's rounding cannot flip
        assert np.array_equal(masks[row][settled.numpy()], (probability > 0.5)[settled].numpy())
        assert 0.0 <= confidence[row] <= 1.0
