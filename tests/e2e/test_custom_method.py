"""A method added from outside the package: one class and one registration, then trained end to
end by the ordinary ``run_experiment`` (config validation, data with ROI images, W&B-free run
directory, checkpoint loading)."""

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from hkd.config import ConfigError
from hkd.methods import METHODS, Method
from hkd.run.checkpoints import load_classifier
from hkd.run.experiment import run_experiment


class ROIConsistency(Method):
    """Cross-entropy plus ``method.weight`` x the distance between the logits on the raw image and
    on the ROI image (a made-up method: it only needs to exercise the declarations)."""

    name = "roi_consistency"
    inputs = ("image", "roi")
    mixes_batches = False
    batches_with_roi = 0

    def __init__(self, weight: float) -> None:  # method.weight, passed by the composition root
        super().__init__("image")
        self.weight = float(weight)

    def training_loss(self, module, batch: dict) -> dict[str, torch.Tensor]:
        ROIConsistency.batches_with_roi += int("roi" in batch)
        _, logits = module.features_and_logits(batch["image"])
        _, roi_logits = module.features_and_logits(batch["roi"])
        ce = module.cross_entropy(logits, batch["label"])
        gap = F.mse_loss(logits, roi_logits)
        return {"loss": ce + self.weight * gap, "ce": ce, "roi_gap": gap, "logits": logits}


@pytest.fixture
def registered():
    METHODS.register(ROIConsistency.name)(ROIConsistency)
    yield ROIConsistency
    METHODS.unregister(ROIConsistency.name)


def test_a_method_registered_from_a_test_file_trains_end_to_end(tiny, registered):
    ROIConsistency.batches_with_roi = 0
    run_dir = run_experiment(tiny("method.name=roi_consistency", "method.weight=0.5", "trainer.max_epochs=2"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "roi_consistency" and summary["test"]["accuracy"] > 0
    assert ROIConsistency.batches_with_roi == 2 * 5  # every batch of both epochs had ROI images
    with open(run_dir / "metrics.csv", newline="") as handle:
        gaps = [float(row["train/roi_gap"]) for row in csv.DictReader(handle) if row.get("train/roi_gap")]
    assert gaps and all(gap >= 0 for gap in gaps) and max(gaps) > 0  # its own term is logged
    model = load_classifier(summary["best_checkpoint"])
    assert isinstance(model.method, ROIConsistency) and model.method.weight == 0.5


def test_an_unregistered_method_is_a_config_error_with_a_suggestion(tiny, registered):
    with pytest.raises(ConfigError, match="method.name='roi_consistensy' is not one of .*did you mean "
                                          "'roi_consistency'"):
        tiny("method.name=roi_consistensy")
    METHODS.unregister("roi_consistency")
    with pytest.raises(ConfigError, match="is not one of baseline"):
        tiny("method.name=roi_consistency")


def test_a_method_with_steps_before_training_has_one_entry_in_the_run_wing(tiny, registered):
    """``METHOD_RUNS``: its preparation runs before training (its records land in summary.json), its
    builder builds the method, and ``uses_annotations`` false trains on data without annotations."""
    from hkd.run.build import build_datamodule
    from hkd.run.method_runs import METHOD_RUNS, MethodRun

    prepared = []

    def prepare(cfg, run_dir, datamodule, class_weights):
        prepared.append(run_dir)
        return ROIConsistency(weight=2.0), {"warm_up": {"steps": 3}}

    METHOD_RUNS.register("roi_consistency")(MethodRun(
        build=lambda cfg, n: ROIConsistency(weight=7.0), prepare=prepare, uses_annotations=lambda cfg: False))
    try:
        cfg = tiny("method.name=roi_consistency", "trainer.max_epochs=1")
        run_dir = run_experiment(cfg)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert prepared == [run_dir] and summary["warm_up"] == {"steps": 3}
        assert load_classifier(summary["best_checkpoint"]).method.weight == 7.0  # loading uses its builder
        datamodule = build_datamodule(cfg)
        datamodule.setup()
        train = datamodule.datasets["train"]
        assert not any(train.has_region(int(idx)) for idx in train.indices)  # annotations dropped
    finally:
        METHOD_RUNS.unregister("roi_consistency")
