"""A requeued SLURM job (same SLURM_JOB_ID, SLURM_RESTART_COUNT > 0) continues its run from
last.ckpt; the same command run again in the job without a requeue is refused; another command of
the job gets its own run directory. Real processes, killed mid-run, with SLURM's variables."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

from tests.conftest import REPO, TINY


def test_a_requeued_job_continues_its_run(tmp_path):
    command = [sys.executable, "-m", "hkd", "train", "quickstart", *TINY, "trainer.max_epochs=6",
               "data.synthetic.n_train=240", f"output_dir={tmp_path / 'runs'}",
               f"data.cache_dir={tmp_path / 'cache'}"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SLURM_", "HKD_RUN_ID"))}
    env |= {"SLURM_JOB_ID": "4242", "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "runs").glob("quickstart/*/checkpoints/last.ckpt")):
        time.sleep(0.2)
    first.kill()  # pre-empted after its first epoch
    first.wait()
    (run_dir,) = (tmp_path / "runs" / "quickstart").iterdir()
    assert run_dir.name.startswith("slurm-4242-") and not (run_dir / "summary.json").is_file()

    refused = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr

    requeued = subprocess.run(command, cwd=REPO, env=env | {"SLURM_RESTART_COUNT": "1"}, capture_output=True,
                              text=True, timeout=600)
    assert requeued.returncode == 0, requeued.stderr[-2000:]
    assert requeued.stdout.strip().endswith(str(run_dir)) and (run_dir / "summary.json").is_file()
    with open(run_dir / "metrics.csv") as file:
        epochs = [int(row["epoch"]) for row in csv.DictReader(file) if row["val/loss"]]
    assert epochs[:6] == [0, 1, 2, 3, 4, 5]  # each epoch validated once: continued, not restarted

    other = subprocess.run([*command, "seed=7", "trainer.max_epochs=1"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=600)
    assert other.returncode == 0, other.stderr[-2000:]
    assert len(list((tmp_path / "runs" / "quickstart").iterdir())) == 2  # another command, its own run
