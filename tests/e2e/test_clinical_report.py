"""The clinical evaluation report in real runs: every run writes its validation logits, fits the
temperature on them when asked and tests with it; predict / export apply it; the report's tables,
figures, subgroups and operating points; `hkd compare --paired`; `hkd test` reports too."""

import json

import numpy as np
import pytest
import torch
from conftest import make_folder_dataset, tiny_config

from hkd.cli import main
from hkd.errors import ConfigError
from hkd.evaluation import metrics
from hkd.evaluation.predictions import read_predictions
from hkd.evaluation.temperature import fit_temperature, nll, softmax
from hkd.inference.export import export_model
from hkd.inference.model import load_model
from hkd.run.experiment import run_experiment

FOLDER = ["data.format=folder", "trainer.max_epochs=2", "augment.policy=none"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp("data"), n_per_class=15, with_split=True,
                               with_sex=True)


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory, data_root):
    cfg = tiny_config(tmp_path_factory.mktemp("calibrated"), *FOLDER, f"data.root={data_root}",
                      "calibration.temperature=true", "report.by=[sex]", "report.bootstrap=200")
    return run_experiment(cfg)


def test_the_temperature_is_fitted_on_validation_and_the_test_pass_uses_it(calibrated_run):
    val = read_predictions(calibrated_run / "val_predictions.csv")
    calibration = json.loads((calibrated_run / "calibration.json").read_text())
    refitted = fit_temperature(val.logits, val.labels)  # from the file's logits (7 digits)
    assert nll(val.logits, val.labels, calibration["temperature"]) == pytest.approx(
        nll(val.logits, val.labels, refitted), abs=1e-5)
    assert calibration["val_nll_after"] <= calibration["val_nll_before"]
    test = read_predictions(calibrated_run / "test_predictions.csv")
    assert np.allclose(test.probabilities, softmax(test.logits, calibration["temperature"]), atol=1e-5)
    assert test.metadata["sex"] and set(test.metadata["sex"]) == {"F", "M"}


def test_loading_and_exporting_apply_the_temperature(calibrated_run, tmp_path):
    temperature = json.loads((calibrated_run / "calibration.json").read_text())["temperature"]
    model, preprocessing = load_model(calibrated_run, device="cpu")
    assert float(model.temperature) == pytest.approx(temperature)
    x = torch.randn(2, preprocessing.channels, preprocessing.image_size, preprocessing.image_size)
    path, description = export_model(calibrated_run, "torchscript", tmp_path)
    exported = torch.jit.load(str(path))
    with torch.no_grad():
        assert torch.allclose(exported(x), model.net(x) / temperature, atol=1e-5)
        assert torch.allclose(model(x), model.net(x) / temperature, atol=1e-5)
    assert json.loads(description.read_text())["temperature"] == pytest.approx(temperature)


def test_every_run_writes_the_report_with_its_subgroups_and_the_model_card_summarises_it(calibrated_run):
    folder = calibrated_run / "report"
    report = json.loads((folder / "report.json").read_text())
    test = read_predictions(calibrated_run / "test_predictions.csv")
    expected = metrics.per_class(test.probabilities, test.labels)
    assert np.allclose(report["per_class"]["sensitivity"]["value"], expected["sensitivity"], equal_nan=True)
    specificity = report["per_class"]["specificity"]
    for (low, high), value in zip(specificity["ci"], specificity["value"]):
        assert low <= value <= high
    groups = report["subgroups"]["groups"]
    assert set(groups) == {"F", "M"} and sum(g["images"] for g in groups.values()) == len(test)
    assert all(group["small"] for group in groups.values())  # fewer than report.min_subgroup images
    calibration = report["calibration"]
    assert calibration["as_deployed"]["ece"] == pytest.approx(calibration["temperature_scaled"]["ece"],
                                                              abs=1e-4)
    text = (folder / "report.md").read_text()
    assert "## Subgroups by sex" in text and "small: read with care" in text and "| a |" in text
    for figure in ("roc", "pr", "reliability"):
        assert (folder / f"{figure}.png").stat().st_size > 10000
    assert "Calibration as deployed: ECE" in (calibrated_run / "MODEL_CARD.md").read_text()


def test_the_report_command_sets_an_operating_point_on_validation(calibrated_run, capsys):
    assert main(["report", str(calibrated_run), "--target-sensitivity", "b=0.9", "--bootstrap", "50"]) == 0
    report = json.loads((calibrated_run / "report" / "report.json").read_text())
    point = report["operating_points"]["b"]
    val = read_predictions(calibrated_run / "val_predictions.csv")
    assert point["validation_sensitivity"] >= 0.9
    assert point["validation_sensitivity"] == pytest.approx((val.probabilities[val.labels == 1, 1]
                                                             >= point["threshold"]).mean())
    test = read_predictions(calibrated_run / "test_predictions.csv")
    at_point = metrics.per_class(test.probabilities, test.labels, {1: point["threshold"]})
    assert report["per_class"]["sensitivity"]["value"][1] == pytest.approx(at_point["sensitivity"][1])
    assert main(["report", str(calibrated_run), "--by", "site"]) == 2
    assert "no such column" in capsys.readouterr().err


def test_paired_comparison_of_two_runs_on_the_same_images(calibrated_run, data_root, tmp_path, capsys):
    other = run_experiment(tiny_config(tmp_path, *FOLDER, f"data.root={data_root}", "seed=1"))
    assert main(["compare", str(calibrated_run), str(other), "--paired"]) == 0
    printed = capsys.readouterr().out
    assert "McNemar exact" in printed and "paired bootstrap" in printed
    smaller = make_folder_dataset(tmp_path / "smaller", n_per_class=10, with_split=True)
    elsewhere = run_experiment(tiny_config(tmp_path / "x", *FOLDER, f"data.root={smaller}"))
    assert main(["compare", str(calibrated_run), str(elsewhere), "--paired"]) == 2
    assert "same images" in capsys.readouterr().err


def test_an_unknown_report_column_stops_before_training(data_root, tmp_path):
    with pytest.raises(ConfigError, match=r"report.by=\['site'\].*it has: sex"):
        run_experiment(tiny_config(tmp_path, *FOLDER, f"data.root={data_root}", "report.by=[site]"))
    assert not list((tmp_path / "runs").rglob("*.ckpt"))


def test_an_external_test_writes_its_report(calibrated_run, data_root):
    assert main(["test", str(calibrated_run), "data.format=folder", f"data.root={data_root}",
                 "--name", "again", "--by", "sex", "--bootstrap", "50"]) == 0
    folder = calibrated_run / "external" / "again"
    report = json.loads((folder / "report" / "report.json").read_text())
    assert report["images"] == len(read_predictions(folder / "test_predictions.csv")) == 30
    assert set(report["subgroups"]["groups"]) == {"F", "M"}
    assert "temperature_scaled" in report["calibration"]  # fitted on the run's own validation split
