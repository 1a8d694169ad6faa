"""`hkd prior train` saves a generator with its held-out Dice; `data.prior_generator` makes it
predict the regions of a data set without annotations (HKD's prior and the relevance mass)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hkd.config import load_config
from hkd.models.prior_generator import load_generator, predict_regions
from hkd.run.experiment import run_experiment
from hkd.run.saved_prior import train_saved_prior
from tests.conftest import TINY, make_folder_dataset

GENERATOR = ["prior_generator.epochs=3", "prior_generator.features=[4,4,8,8,16,4]",
             "data.relevant_categories=[lung]"]


@pytest.fixture(scope="module")
def generator_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prior")
    cfg = load_config("synthetic", [*TINY, *GENERATOR, f"output_dir={tmp / 'runs'}",
                                    f"data.cache_dir={tmp / 'cache'}", "data.synthetic.n_train=64",
                                    "data.synthetic.n_test=24"])
    return train_saved_prior(cfg)


def test_prior_train_saves_the_generator_with_its_held_out_dice(generator_run):
    summary = json.loads((generator_run / "summary.json").read_text())
    assert summary["n_test"] == 24 and summary["n_train"] == 64
    assert 0.0 <= summary["test_dice"] <= 1.0 and summary["val_dice"] is not None
    assert summary["preprocessing"]["image_size"] == 32
    assert (generator_run / "test_predictions.png").stat().st_size > 1000
    module, preprocessing = load_generator(generator_run / "prior_generator.pt")
    images = np.random.default_rng(0).uniform(0, 1, (3, 1, 32, 32)).astype(np.float32)
    expected = torch.sigmoid(module((torch.from_numpy(images) - 0.5) / 0.25))[:, 0] > 0.5
    np.testing.assert_array_equal(predict_regions(module, preprocessing, images), expected.numpy())
    # any input size: resized to the generator's, the mask back to the input's
    assert predict_regions(module, preprocessing, np.zeros((2, 3, 50, 50), np.float32)).shape == (2, 50, 50)


def test_a_saved_generator_gives_regions_to_a_data_set_without_annotations(generator_run, tmp_path):
    root = make_folder_dataset(tmp_path / "data", n_per_class=10, size=48, annotations=False)
    overrides = [*TINY, "data.format=folder", f"data.root={root}", f"output_dir={tmp_path / 'runs'}",
                 f"data.cache_dir={tmp_path / 'cache'}", f"data.prior_generator={generator_run}",
                 "method.name=hkd", "hkd.teacher_epochs=1", "data.shortcut.kind=corner_tag"]
    run_dir = run_experiment(load_config("quickstart", overrides))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["saved_prior"]["n_without_region"] == 20
    assert "relevance_mass" in summary["explanations"]  # the test images have (predicted) regions
    assert (run_dir / "teacher" / "summary.json").is_file()  # the teacher trained on predicted ROIs
    cached = list((tmp_path / "cache" / "decoded").glob("*-regions-*.npy"))
    assert len(cached) == 1
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert f"predicted by the saved generator `{generator_run}`" in card
    assert "Stress test, not a model to use" in card and "corner_tag" in card
    masks = np.load(cached[0])
    assert masks.shape == (20, 32, 32)
    assert summary["saved_prior"]["n_predicted"] == int(masks.any((1, 2)).sum())


