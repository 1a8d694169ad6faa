"""One experiment end to end: the run directory, resume, W&B offline, local weights, the CLI."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
from conftest import REPO, logged_test_metrics
from omegaconf import OmegaConf

from hkd.models.backbone import BackboneSpec, PretrainedWeightsError, build_backbone
from hkd.run.experiment import run_experiment

SUMMARY_KEYS = {"name", "method", "seed", "val", "test", "explanations", "run_dir", "duration_s"}
TEST_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "auroc"}


def test_one_epoch_writes_a_complete_run_directory(tiny):
    run_dir = run_experiment(tiny("data.sampler=balanced", "model.class_weights=true"))
    for name in ("config.yaml", "summary.json", "metrics.csv", "confusion_matrix.png",
                 "cam_overlays.png", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and TEST_KEYS <= set(summary["test"])
    logged = logged_test_metrics(run_dir)  # the summary holds what the test loop measured
    assert summary["test"]["accuracy"] == pytest.approx(logged["accuracy"])
    assert summary["explanations"]["relevance_mass"] == pytest.approx(logged["relevance_mass"])
    assert summary["run_dir"] == str(run_dir) and summary["duration_s"] > 0
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout
    assert summary["git_commit"].split("+")[0] == head.strip()  # which code made these numbers
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.data.sampler == "balanced" and saved.name == "quickstart"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert {"train/loss", "val/balanced_accuracy", "test/accuracy"} <= set(metrics.columns)


def test_resume_continues_from_last_checkpoint(tiny):
    run_dir = run_experiment(tiny("trainer.max_epochs=1"))
    first = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)
    assert first["epoch"] == 0
    resumed = run_experiment(tiny(f"resume={run_dir}", "trainer.max_epochs=2"),
                             [f"resume={run_dir}", "trainer.max_epochs=2"])
    assert resumed == run_dir
    second = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)
    assert second["global_step"] == 2 * first["global_step"]
    metrics = pd.read_csv(run_dir / "metrics.csv")  # both parts kept, in one file
    trained = metrics.dropna(subset=["train/loss"])
    assert set(trained.epoch) == {0, 1}
    assert OmegaConf.load(run_dir / "config.yaml").trainer.max_epochs == 2


@pytest.mark.parametrize("images", [True, False])
def test_wandb_offline_writes_a_local_run_with_media_unless_disabled(tiny, monkeypatch, images):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = run_experiment(tiny("logging.wandb=offline", f"logging.images={images}",
                                  "trainer.max_epochs=2"))
    offline_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("*.wandb"))
    media = sorted(p.name for p in offline_runs[0].rglob("media/images/**/*.png"))
    if images:  # priors, per-epoch CAMs, final CAMs, confusion matrix
        assert any(name.startswith("priors_and_roi") for name in media), media
        assert any(name.startswith("confusion_matrix") for name in media), media
        assert sum(name.startswith("cam_overlays") for name in media) >= 3, media  # 2 epochs + best
        for figure in ("roc", "pr", "reliability"):  # the clinical report's
            assert any(path.parent.name == "report" and path.name.startswith(figure)
                       for path in offline_runs[0].rglob("media/images/**/*.png")), media
    else:
        assert media == []


def test_resume_continues_the_same_wandb_run(tiny, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run_dir = run_experiment(tiny("logging.wandb=offline", "trainer.max_epochs=1"))
    more = [f"resume={run_dir}", "trainer.max_epochs=2"]
    run_experiment(tiny("logging.wandb=offline", *more), more)
    parts = sorted((run_dir / "wandb").glob("offline-run-*"))  # one per session, synced as one run
    assert len(parts) == 2
    assert {part.name.rsplit("-", 1)[1] for part in parts} == {(run_dir / "wandb-id.txt").read_text().strip()}


def test_pretrained_weights_from_a_local_file(tmp_path):
    source = timm.create_model("test_resnet", num_classes=1000, in_chans=3)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    cfg = BackboneSpec("test_resnet", pretrained=str(path))
    model = build_backbone(cfg, num_classes=4, in_chans=1)
    # the 3-channel stem was summed into one channel; the body is copied as is
    stem = next(k for k, v in source.state_dict().items() if v.ndim == 4)
    assert torch.allclose(model.state_dict()[stem][:, 0], source.state_dict()[stem].sum(1))
    body = [k for k in source.state_dict() if "layer" in k and "weight" in k][0]
    assert torch.equal(model.state_dict()[body], source.state_dict()[body])
    assert model.get_classifier().out_features == 4
    with pytest.raises(PretrainedWeightsError, match="no such weights file"):
        build_backbone(replace(cfg, pretrained=str(tmp_path / "missing.pth")), num_classes=4, in_chans=1)


def test_cli_prints_the_run_directory_last(tmp_path):
    from conftest import TINY

    result = subprocess.run(
        [sys.executable, "-m", "hkd", "train", "quickstart", *TINY,
         f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    last = Path(result.stdout.strip().splitlines()[-1])
    assert last.parent.parent == tmp_path / "runs" and (last / "summary.json").is_file()


def test_cli_reports_config_errors_without_a_traceback():
    result = subprocess.run([sys.executable, "-m", "hkd", "train", "quickstart",
                             "trainer.max_epoch=3"], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert "max_epoch" in result.stderr and "Traceback" not in result.stderr


def test_the_test_split_runs_once_and_its_outputs_give_the_csv_and_intervals(tiny, monkeypatch):
    """One pass over the test split: its per-sample outputs give test_predictions.csv (with the
    region scores) and the confidence intervals, and they agree with the logged test metrics."""
    from hkd.models.classifier import ClassifierModule

    seen: list[int] = []
    original = ClassifierModule.true_class_cams

    def counting(self, x, labels):
        seen.append(len(x))
        return original(self, x, labels)

    monkeypatch.setattr(ClassifierModule, "true_class_cams", counting)
    run_dir = run_experiment(tiny("explain.n_images=4"))
    summary = json.loads((run_dir / "summary.json").read_text())
    n_test = summary["splits"]["test"]["images"]
    overlays = 4 * 2  # the fixed test images' CAM overlays: at the best epoch and at the end
    assert sum(seen) <= n_test + overlays  # was twice the test split (trainer.test, then a predict pass)
    rows = pd.read_csv(run_dir / "test_predictions.csv")
    assert len(rows) == n_test and rows["idx"].is_unique
    assert (rows["label"] == rows["prediction"]).mean() == pytest.approx(summary["test"]["accuracy"])
    assert rows["relevance_mass"].mean() == pytest.approx(summary["explanations"]["relevance_mass"], abs=1e-5)
    low, high = summary["test_ci"]["accuracy"]
    assert low <= summary["test"]["accuracy"] <= high
