"""Faults during training: non-finite losses, killed runs, bad images, full disks, dying ranks."""

import json
import os
from pathlib import Path

import torch
from conftest import TINY

from hkd.checkpoints import AtomicCheckpointIO, is_good_checkpoint, resume_checkpoint
from hkd.cli import main

DIVERGE = ["optim.name=sgd", "optim.lr=1e12", "optim.scheduler=none", "trainer.max_epochs=2"]


def test_nonfinite_loss_stops_with_step_samples_and_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["train", "quickstart", *TINY, *DIVERGE, f"output_dir={out}",
                 f"data.cache_dir={tmp_path / 'cache'}", "name=nan"])
    error = capsys.readouterr().err
    assert code == 3
    assert "non-finite loss" in error and "samples idx [" in error and "step " in error
    run_dir = next((out / "nan").iterdir())
    assert not (run_dir / "summary.json").exists()  # no results from a diverged model
    assert "last good checkpoint is" in error or "no good checkpoint yet" in error
    if "last good checkpoint is" in error:
        last = error.split("last good checkpoint is ")[1].split(".ckpt")[0] + ".ckpt"
        assert is_good_checkpoint(Path(last))


def test_resume_skips_a_damaged_last_checkpoint(tmp_path):
    """A half-written last.ckpt and one with NaN weights are detected; the newest good one is used."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    good = {"state_dict": {"w": torch.ones(3)}, "epoch": 1}
    AtomicCheckpointIO().save_checkpoint(good, folder / "best-epoch=01.ckpt")
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([float("nan")])}},
                                         folder / "best-epoch=00.ckpt")
    os.utime(folder / "best-epoch=00.ckpt", (0, 0))  # older than the good one
    AtomicCheckpointIO().save_checkpoint(good, folder / "last.ckpt")
    assert resume_checkpoint(folder) == folder / "last.ckpt"
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])  # killed while writing (non-atomic IO)
    assert not is_good_checkpoint(folder / "last.ckpt")
    assert resume_checkpoint(folder) == folder / "best-epoch=01.ckpt"
    (folder / "best-epoch=01.ckpt").unlink()
    assert resume_checkpoint(folder) is None  # the NaN one is never used
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_nonfinite_loss_skip_policy_finishes_and_counts(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["train", "quickstart", *TINY, *DIVERGE, "trainer.nonfinite_loss=skip",
                 f"output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}", "name=skip"])
    assert code == 0
    summary = json.loads(next((out / "skip").glob("*/summary.json")).read_text())
    assert summary["skipped_batches"] > 0
