"""Every published setting of both papers is an experiment file (PneuKnowNet's grid under
experiments/pneuknownet/, pneuknownet.yaml, imil_paper.yaml): each names a real timm network and
trains end to end here on a tiny folder data set with a tiny backbone, so none of them rots."""

import json

import pytest
import timm
from conftest import TINY, make_folder_dataset

from hkd.config import experiments_dir, load_config
from hkd.run.experiment import run_experiment

GRID = experiments_dir() / "pneuknownet"
PUBLISHED = sorted(["pneuknownet", "imil_paper", *(f"pneuknownet/{p.stem}" for p in GRID.glob("*.yaml"))])
SHRINK = [*TINY, "model.backbone=test_resnet", "model.pretrained=false", "model.output_stride=8",
          "data.classes=[a,b]", "trainer.precision=32-true", "hkd.teacher_epochs=1", "hkd.kd_epochs=1",
          "imil.start_epoch=0", "data.batch_size=4"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("data"), n_per_class=10, with_split=True)


def test_the_grid_is_complete():
    grid = {name.split("/")[1] for name in PUBLISHED if "/" in name}
    assert grid == {f"{backbone}_{aug}" for backbone in ("resnet50", "efficientnet_b0", "efficientnet_b1",
                                                         "convnext_tiny", "convnext_small")
                    for aug in ("strong", "weak")}


@pytest.mark.parametrize("experiment", PUBLISHED)
def test_every_published_setting_trains(experiment, data_root, tmp_path):
    published = load_config(experiment, [f"data.root={data_root}"])
    assert timm.is_model(published.model.backbone)
    cfg = load_config(experiment, [f"data.root={data_root}", *SHRINK, f"output_dir={tmp_path / 'runs'}",
                                   f"data.cache_dir={tmp_path / 'cache'}"])
    summary = json.loads((run_experiment(cfg) / "summary.json").read_text())
    assert summary["method"] == published.method.name and summary["name"] == experiment.replace("/", "_")
    assert summary["imil"] == bool(published.imil.enabled)
