"""The Trainer and callbacks are the user's: any trainer.* argument, configured callbacks, a user's
callback by import path, sync_batchnorm under real 2-process DDP (gloo)."""

import csv
import json

import pytest
import torch

from hkd.config import ConfigError
from hkd.models.backbone import build_backbone
from hkd.run.experiment import run_experiment
from hkd.run.trainer import build_trainer


def logged_columns(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_any_trainer_argument_reaches_lightning(tiny):
    run_dir = run_experiment(tiny("trainer.accumulate_grad_batches=2", "trainer.max_epochs=2"))
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2 * 3  # 5 batches an epoch, one optimizer step per 2 (the last alone)
    with pytest.raises(ConfigError, match="did you mean 'accumulate_grad_batches'"):
        tiny("trainer.accumulate_grad_batch=2")


def test_configured_callbacks_early_stopping_lr_monitor_and_swa(tiny):
    stopping = "callbacks.early_stopping={monitor: val/loss, patience: 0, min_delta: 1000, mode: min}"
    run_dir = run_experiment(tiny(stopping, "callbacks.lr_monitor=true", "callbacks.swa={swa_lrs: 0.001}",
                                  "trainer.max_epochs=6"))
    rows = logged_columns(run_dir)
    trained = {int(row["epoch"]) for row in rows if row.get("train/loss")}
    assert trained == {0, 1}  # no improvement of 1000 after the first epoch: stopped after the second
    # the learning-rate monitor, one column per parameter group (with / without weight decay)
    assert any(row.get("lr-AdamW/pg1") for row in rows) and any(row.get("lr-AdamW/pg2") for row in rows)
    with pytest.raises(ConfigError, match="callbacks.early_stopping: EarlyStopping"):
        run_experiment(tiny("callbacks.early_stopping={monitor: val/loss, patients: 3}"))


def test_a_user_callback_by_import_path_runs_on_every_ddp_rank(tiny, tmp_path):
    spec = f"{{class_path: probe_callbacks.RecordNormLayers, init_args: {{folder: {tmp_path}}}}}"
    run_experiment(tiny(f"callbacks.extra=[{spec}]", "trainer.strategy=ddp_spawn", "trainer.devices=2"))
    ranks = [json.loads((tmp_path / f"norms-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0] == ranks[1] == ["BatchNorm2d"]
    with pytest.raises(ConfigError, match=r"callbacks.extra\[0\].class_path=probe_callbacks.Nope: cannot"):
        run_experiment(tiny("callbacks.extra=[{class_path: probe_callbacks.Nope}]"))


def test_sync_batchnorm_reaches_the_ddp_strategy(tiny, tmp_path):
    """torch refuses SyncBatchNorm in DDP on CPU modules, so the CPU check stops at the strategy:
    it holds Lightning's batch-norm sync, which converts the model's layers when DDP sets up."""
    cfg = tiny("trainer.sync_batchnorm=true", "trainer.strategy=ddp_spawn", "trainer.devices=2")
    trainer = build_trainer(cfg, tmp_path, 1, "val/loss", "min")
    converted = trainer.strategy._layer_sync.apply(build_backbone(cfg.model, 4, 1, 32))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in converted.modules())
    cfg = tiny("trainer.strategy=ddp_spawn", "trainer.devices=2")
    plain = build_trainer(cfg, tmp_path, 1, "val/loss", "min")
    assert plain.strategy._layer_sync is None
