"""Multi-process DDP on CPU (gloo): 2-process ddp_spawn in pytest, and the real ddp launcher."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, logged_test_metrics
from lightning.pytorch.callbacks import Callback

from hkd.evaluation.predictions import read_predictions
from hkd.evaluation.temperature import softmax
from hkd.imil.callback import IMILCallback
from hkd.imil.masks import encode_mask
from hkd.run.build import build_datamodule, build_imil_callback, build_module
from hkd.run.trainer import build_trainer

pytestmark = [pytest.mark.ddp, pytest.mark.timeout(300)]


class RankDump(Callback):
    """Each rank writes its IMIL edit table and the samples it trained on."""

    def __init__(self, folder):
        self.folder = folder
        self.seen = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.update(batch["idx"].tolist())

    def on_train_end(self, trainer, pl_module):
        imil = next(c for c in trainer.callbacks if isinstance(c, IMILCallback))
        edits = {str(i): encode_mask(imil.table[i].mask) for i in sorted(imil.table)}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(
            json.dumps({"edits": edits, "seen": sorted(self.seen),
                        "edited": sorted(trainer.datamodule.datasets["train"].edits)}))


@pytest.mark.parametrize("method", ["baseline", "hkd", "rrr", "gradmask", "actdiff", "cam_align"])
def test_ddp_spawn_two_ranks_end_with_identical_edit_tables(tiny, tmp_path, method):
    """Every method trains under 2-process DDP with IMIL rounds; all ranks hold the same edits."""
    cfg = tiny("imil.enabled=true", "imil.start_epoch=0", "imil.every_n_epochs=1",
               "imil.budget=0.5", "trainer.max_epochs=2", "trainer.strategy=ddp_spawn",
               "trainer.devices=2", f"method.name={method}", "data.synthetic.n_train=37")
    datamodule = build_datamodule(cfg, roi_mode=cfg.hkd.roi_mode if method == "hkd" else None)
    module = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg, tmp_path, 2, "val/loss", "min",
                            callbacks=[build_imil_callback(cfg, tmp_path), RankDump(tmp_path)])
    trainer.fit(module, datamodule=datamodule)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["edits"] and ranks[0]["edits"] == ranks[1]["edits"]
    assert ranks[0]["edited"] == ranks[1]["edited"] == sorted(map(int, ranks[0]["edits"]))
    assert len(set(ranks[0]["seen"]) | set(ranks[1]["seen"])) == 37  # shards cover the train set
    saved = json.loads((tmp_path / "imil" / "edits.json").read_text())
    assert sorted(str(e["idx"]) for e in saved["edits"]) == sorted(ranks[0]["edits"])
    assert saved["n_edited"] <= 18  # the budget (50% of 37) despite the sampler's padding


@pytest.mark.parametrize("method", ["baseline", "hkd"])
def test_real_ddp_launcher_writes_one_run_directory(tmp_path, method):
    result = subprocess.run(
        [sys.executable, "-m", "hkd", "train", "quickstart", *TINY, f"method.name={method}",
         "trainer.strategy=ddp", "trainer.devices=2", "hkd.teacher_epochs=1", "calibration.temperature=true",
         f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=280,
        env={**__import__("os").environ, "WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs" / "quickstart").iterdir())
    assert len(runs) == 1  # every rank wrote into the same run directory
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["method"] == method
    assert summary["test"]["accuracy"] == pytest.approx(logged_test_metrics(runs[0])["accuracy"])
    assert (runs[0] / "teacher" / "summary.json").is_file() == (method == "hkd")
    # every rank tested with the one temperature fitted on the whole validation split
    temperature = json.loads((runs[0] / "calibration.json").read_text())["temperature"]
    test = read_predictions(runs[0] / "test_predictions.csv")
    assert len(test) == summary["splits"]["test"]["images"]
    assert np.allclose(test.probabilities, softmax(test.logits, temperature), atol=1e-5)
    assert (runs[0] / "report" / "report.md").is_file()


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_rank_that_dies_ends_the_job_with_an_error(tmp_path):
    """SIGKILL rank 1 of a real 2-process ddp job mid-training: rank 0 must not hang."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hkd", "train", "quickstart", *TINY, "trainer.strategy=ddp",
         "trainer.devices=2", "trainer.max_epochs=200", f"output_dir={tmp_path / 'runs'}",
         f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "WANDB_MODE": "disabled", "HKD_RUN_ID": "job"})
    last = tmp_path / "runs" / "quickstart" / "job" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 200
    while not last.exists():  # both ranks are training once an epoch has ended
        assert process.poll() is None and time.time() < deadline, "the job never started training"
        time.sleep(0.2)
    ranks = [pid for pid in children_of(process.pid)
             if b"LOCAL_RANK=1" in Path(f"/proc/{pid}/environ").read_bytes()]
    assert len(ranks) == 1
    os.kill(ranks[0], signal.SIGKILL)
    started = time.time()
    try:
        process.wait(timeout=180)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("rank 0 hung after rank 1 died") from None
    assert process.returncode != 0
    assert time.time() - started < 180


def test_torchrun_ranks_share_one_run_directory(tmp_path):
    """torchrun starts every rank itself; they agree on the run id without HKD_RUN_ID."""
    env = {k: v for k, v in os.environ.items() if k != "HKD_RUN_ID"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "hkd",
         "train", "quickstart", *TINY, "trainer.strategy=ddp", "trainer.devices=2",
         f"output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}"],
        cwd=REPO, capture_output=True, text=True, timeout=280, env={**env, "WANDB_MODE": "disabled"})
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "runs" / "quickstart").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("torchrun-")
    assert (runs[0] / "summary.json").is_file()


def test_independent_ranks_without_a_shared_id_are_refused(monkeypatch):
    from hkd.config import ConfigError
    from hkd.run.run_dir import _USED_RUN_IDS, launcher_run_id, run_id

    monkeypatch.delenv("HKD_RUN_ID", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="set HKD_RUN_ID to the same value on every rank"):
        run_id()
    slurm = {"SLURM_JOB_ID": "991", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "8"}
    assert launcher_run_id(slurm) == launcher_run_id(dict(slurm))  # identical on every task
    assert launcher_run_id(slurm).startswith("slurm-991.0-")
    batch_shell = {"SLURM_JOB_ID": "991", "SLURM_NTASKS": "8"}  # the sbatch script itself, no srun
    assert launcher_run_id(batch_shell, "0a1b2c3d") == f"slurm-991-0a1b2c3d-{len(_USED_RUN_IDS)}"
    assert launcher_run_id({}) is None


def test_a_nan_batch_on_one_rank_changes_no_rank_s_weights(tiny, tmp_path):
    """The non-finite guarantee under DDP without a per-step all-reduce: a NaN image on rank 0
    poisons the all-reduced gradients; every rank skips that step on the device."""
    from probe_callbacks import PoisonOneBatch

    cfg = tiny("trainer.strategy=ddp_spawn", "trainer.devices=2", "training.nonfinite_loss=skip",
               "trainer.max_epochs=1")
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.classes)
    trainer = build_trainer(cfg, tmp_path, 1, "val/loss", "min", callbacks=[PoisonOneBatch(str(tmp_path))])
    trainer.fit(module, datamodule=datamodule)
    ranks = [json.loads((tmp_path / f"poison-rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["good_step_changed"] and not rank["bad_step_changed"] and rank["finite"]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # still in step
