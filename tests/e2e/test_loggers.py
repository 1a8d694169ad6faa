"""logging.loggers: TensorBoard event files and an MLflow run, written by a real run and read back
with their own readers; a resume continues the same MLflow run."""

from __future__ import annotations

import csv

import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hkd.config import ConfigError
from hkd.run.experiment import run_experiment
from hkd.run.loggers import mlflow_uri


def csv_column(run_dir, key: str) -> list[float]:
    with open(run_dir / "metrics.csv") as file:
        return [float(row[key]) for row in csv.DictReader(file) if row[key]]


def test_tensorboard_and_mlflow_receive_every_epoch_and_a_resume_continues(tiny):
    dashboards = ("logging.loggers=[tensorboard,mlflow]", "logging.project=hkd-tests")
    cfg = tiny(*dashboards, "trainer.max_epochs=2")
    run_dir = run_experiment(cfg)

    logged = csv_column(run_dir, "val/balanced_accuracy")  # 2 epochs, then the best checkpoint's pass
    assert len(logged) == 3
    events = EventAccumulator(str(run_dir / "tensorboard" / "train"))
    events.Reload()
    assert [event.value for event in events.Scalars("val/balanced_accuracy")] == pytest.approx(logged)
    assert "train/loss" in events.Tags()["scalars"]

    client = MlflowClient(tracking_uri=mlflow_uri(cfg))
    run_id = (run_dir / "mlflow-id.txt").read_text().strip()
    run = client.get_run(run_id)
    assert run.info.run_name == f"{cfg.name}/{run_dir.name}" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["cfg/method/name"] == "baseline" and params["cfg/trainer/max_epochs"] == "2"
    history = client.get_metric_history(run_id, "val/balanced_accuracy")
    assert [metric.value for metric in history] == pytest.approx(logged)
    assert "test/accuracy" in run.data.metrics

    resumed = run_experiment(tiny(*dashboards, f"resume={run_dir}", "trainer.max_epochs=3"),
                             [f"resume={run_dir}", "trainer.max_epochs=3"])
    assert resumed == run_dir and (run_dir / "mlflow-id.txt").read_text().strip() == run_id
    resumed_history = client.get_metric_history(run_id, "val/balanced_accuracy")
    assert len(resumed_history) == len(logged) + 2  # epoch 3 and the best checkpoint's pass
    assert client.get_run(run_id).data.params["cfg/trainer/max_epochs"] == "2"  # as the run began
    assert [experiment.name for experiment in client.search_experiments()].count("hkd-tests") == 1


def test_an_unknown_dashboard_is_refused_with_a_suggestion(tiny):
    with pytest.raises(ConfigError, match="logging.loggers: 'tensorbord' is not one of csv, wandb, "
                                          r"tensorboard, mlflow \(did you mean 'tensorboard'\?\)"):
        tiny("logging.loggers=[tensorbord]")


def test_a_dashboard_without_its_package_is_named_unless_turned_off(tiny, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "wandb" else real(name, *args))
    assert tiny("logging.loggers=[wandb]", "logging.wandb=disabled").logging.wandb == "disabled"
    with pytest.raises(ConfigError, match="wandb needs the wandb package: pip install wandb"):
        tiny("logging.loggers=[wandb]", "logging.wandb=offline")
