"""Faults during training: non-finite losses, killed runs, bad images, full disks, dying ranks."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, TINY

from hkd.cli import main
from hkd.imil.edits import load_edits
from hkd.run.build import build_datamodule, build_module
from hkd.run.checkpoints import AtomicCheckpointIO, is_good_checkpoint, resume_checkpoint

DIVERGE = ["optim.name=sgd", "optim.lr=1e12", "optim.scheduler=none", "trainer.max_epochs=2"]


def test_nonfinite_loss_at_the_first_steps_stops_with_no_checkpoint(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["train", "quickstart", *TINY, *DIVERGE, f"output_dir={out}",
                 f"data.cache_dir={tmp_path / 'cache'}", "name=nan"])
    error = capsys.readouterr().err
    assert code == 3
    assert "non-finite loss" in error and "samples idx [" in error and "step " in error
    assert "there is no good checkpoint yet" in error  # it diverges within the first epoch
    run_dir = next((out / "nan").iterdir())
    assert not (run_dir / "summary.json").exists()  # no results from a diverged model


def test_nonfinite_loss_after_a_good_epoch_names_that_checkpoint_and_leaves_it_intact(tmp_path, capsys):
    """One good epoch, then a resume whose inputs are NaN (a NaN normalisation mean): the run stops
    at the first resumed step, names last.ckpt, and last.ckpt still holds epoch 0's weights."""
    out = tmp_path / "runs"
    common = [*TINY, f"output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}", "name=later"]
    assert main(["train", "quickstart", *common]) == 0
    run_dir = next((out / "later").iterdir())
    last = run_dir / "checkpoints" / "last.ckpt"
    before = torch.load(last, weights_only=False)
    capsys.readouterr()
    code = main(["train", "quickstart", *common, f"resume={run_dir}", "data.mean=[.nan]",
                 "trainer.max_epochs=2"])
    error = capsys.readouterr().err
    assert code == 3 and f"the last good checkpoint is {last}" in error
    assert is_good_checkpoint(last)
    after = torch.load(last, weights_only=False)
    assert after["epoch"] == before["epoch"] == 0
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())


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
    (folder / ".last.ckpt.abc123").write_bytes(b"half")  # a write killed before its rename
    assert resume_checkpoint(folder) == folder / "last.ckpt"
    assert not (folder / ".last.ckpt.abc123").exists()
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])  # killed while writing (non-atomic IO)
    assert not is_good_checkpoint(folder / "last.ckpt")
    assert resume_checkpoint(folder) == folder / "best-epoch=01.ckpt"
    (folder / "best-epoch=01.ckpt").unlink()
    assert resume_checkpoint(folder) is None  # the NaN one is never used
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_nonfinite_loss_skip_policy_finishes_and_counts(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["train", "quickstart", *TINY, *DIVERGE, "training.nonfinite_loss=skip",
                 f"output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}", "name=skip"])
    assert code == 0
    summary = json.loads(next((out / "skip").glob("*/summary.json")).read_text())
    assert summary["skipped_batches"] > 0


def start_training(tmp_path, *overrides: str) -> tuple[subprocess.Popen, Path]:
    run_dir = tmp_path / "runs" / "killed" / "run"
    command = [sys.executable, "-m", "hkd", "train", "quickstart", *TINY, "name=killed",
               f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}", *overrides]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "HKD_RUN_ID": "run"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return process, run_dir


def kill_when(process: subprocess.Popen, trigger: Path, ready=Path.exists, timeout: float = 300) -> None:
    """SIGKILL the training process as soon as `ready(trigger)`."""
    deadline = time.time() + timeout
    while not ready(trigger):
        if process.poll() is not None:
            raise AssertionError(f"training ended before {trigger.name} was ready:\n{process.stderr.read()}")
        assert time.time() < deadline, f"{trigger} was never ready"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


def resume(run_dir: Path, *overrides: str) -> None:
    result = subprocess.run([sys.executable, "-m", "hkd", "train", "quickstart", f"resume={run_dir}",
                             *overrides], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)


def assert_complete(run_dir: Path, epochs: int) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    for name in ("config.yaml", "metrics.csv", "confusion_matrix.png", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    assert is_good_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)["epoch"] == epochs - 1
    assert not list(run_dir.rglob(".*.tmp*")) and not list((run_dir / "checkpoints").glob(".*"))
    return summary


def test_sigkill_mid_epoch_then_resume_completes(tmp_path):
    process, run_dir = start_training(tmp_path, "trainer.max_epochs=3", "data.synthetic.n_train=160")
    kill_when(process, run_dir / "checkpoints" / "last.ckpt")  # killed early in epoch 1
    assert process.returncode == -signal.SIGKILL and not (run_dir / "summary.json").exists()
    resume(run_dir)
    assert_complete(run_dir, epochs=3)
    trained = [line for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert trained  # the metrics of the killed part are kept


def test_sigkill_between_hkd_stages_reuses_the_teacher(tmp_path):
    process, run_dir = start_training(tmp_path, "method.name=hkd", "hkd.teacher_epochs=1",
                                      "trainer.max_epochs=2")
    kill_when(process, run_dir / "teacher" / "summary.json")
    teacher_before = (run_dir / "teacher" / "summary.json").read_text()
    resume(run_dir)
    summary = assert_complete(run_dir, epochs=2)
    assert (run_dir / "teacher" / "summary.json").read_text() == teacher_before  # not retrained
    assert summary["teacher"]["best_checkpoint"] == json.loads(teacher_before)["best_checkpoint"]


def test_sigkill_after_an_imil_round_keeps_exactly_those_edits(tmp_path):
    process, run_dir = start_training(tmp_path, "imil.enabled=true", "imil.start_epoch=0",
                                      "imil.every_n_epochs=1", "imil.rounds=1", "imil.budget=0.25",
                                      "trainer.max_epochs=3")
    kill_when(process, run_dir / "imil" / "edits.json", ready=lambda path: path.is_file() and bool(
        json.loads(path.read_text())["n_edited"]))  # the file is written atomically: always whole
    before = load_edits(run_dir)
    assert len(before)
    resume(run_dir)
    assert_complete(run_dir, epochs=3)
    after = load_edits(run_dir)
    assert sorted(after) == sorted(before)  # one round only: the same samples ...
    assert all(np.array_equal(after[i].mask, before[i].mask) for i in before)  # ... with the same masks


def test_a_reused_run_id_is_refused_unless_resumed(tiny, monkeypatch):
    """A second process with the same HKD_RUN_ID must not mix its run into the first one's folder
    (nor continue its HKD teacher); resume= continues it."""
    from hkd.config import ConfigError
    from hkd.run import run_dir as run_directory
    from hkd.run.experiment import run_experiment

    monkeypatch.setenv("HKD_RUN_ID", "fixed")
    cfg = tiny("method.name=hkd", "hkd.teacher_epochs=1", "name=reuse")
    first = run_experiment(cfg)
    monkeypatch.setattr(run_directory, "_USED_RUN_IDS", set())  # as in a new process
    monkeypatch.setenv("HKD_RUN_ID", "fixed")
    with pytest.raises(ConfigError, match=f"already holds a run.*resume={first}"):
        run_experiment(cfg)
    assert json.loads((first / "summary.json").read_text())["method"] == "hkd"  # untouched
    teacher_summary = (first / "teacher" / "summary.json").read_text()
    more = [f"resume={first}", "trainer.max_epochs=2"]
    resumed = run_experiment(tiny(*more), more)
    assert resumed == first
    assert (first / "teacher" / "summary.json").read_text() == teacher_summary  # stage 1 not rerun
    assert json.loads((first / "summary.json").read_text())["teacher"] == json.loads(teacher_summary)


def test_resume_reads_last_checkpoint_once(tmp_path, monkeypatch):
    """Checking last.ckpt before resuming and resuming from it is one read of the file."""
    from hkd.config import load_config
    from hkd.run.experiment import run_experiment

    overrides = [*TINY, f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}"]
    run_dir = run_experiment(load_config("quickstart", overrides))
    last = (run_dir / "checkpoints" / "last.ckpt").resolve()
    reads = []
    original = torch.load

    def counting_load(f, *args, **kwargs):
        name = f if isinstance(f, (str, Path)) else getattr(f, "path", None) or getattr(f, "name", "")
        reads.append(Path(str(name)).resolve())
        return original(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    resumed = [f"resume={run_dir}", "trainer.max_epochs=2"]
    run_experiment(load_config("quickstart", [*overrides, *resumed]), resumed)
    assert reads.count(last) == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert torch.load(last, weights_only=False)["epoch"] == 1  # and it did continue: 2 epochs in all
    assert summary["test"]


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_nan_batch_never_changes_the_weights_without_a_sync_per_step(tmp_path, optimizer):
    """One NaN image: that step leaves weights and optimizer moments as they were (the fused
    optimizer skips it on the device), the steps around it train, and the host learns of it at
    its next look (here: the epoch's end) with the step's samples."""
    from lightning.pytorch.callbacks import Callback
    from probe_callbacks import PoisonOneBatch

    from hkd.config import load_config
    from hkd.run.trainer import build_trainer

    syncs = []

    class CountSyncs(Callback):  # host reads of a tensor's value (.item(), bool()) inside training steps
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.originals = {name: getattr(torch.Tensor, name) for name in ("item", "__bool__")}
            for name, original in self.originals.items():
                setattr(torch.Tensor, name, lambda t, o=original: syncs.append(batch_idx) or o(t))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            for name, original in self.originals.items():
                setattr(torch.Tensor, name, original)

    cfg = load_config("quickstart", [*TINY, f"output_dir={tmp_path / 'runs'}",
                                     f"data.cache_dir={tmp_path / 'cache'}", "training.nonfinite_loss=skip",
                                     f"optim.name={optimizer}",
                                     "trainer.log_every_n_steps=50"])
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg, tmp_path, 1, "val/loss", "min",
                            callbacks=[PoisonOneBatch(str(tmp_path)), CountSyncs()])
    trainer.fit(module, datamodule=datamodule)
    probe = json.loads((tmp_path / "poison-rank0.json").read_text())
    assert probe["good_step_changed"] and not probe["bad_step_changed"] and probe["finite"]
    assert module.skipped_batches == 1
    assert trainer.optimizers[0].defaults["fused"]
    # no step waited for the device to say whether its loss was finite: the only reads are
    # Lightning's logging at the epoch's last step
    assert set(syncs) <= {trainer.num_training_batches - 1}
