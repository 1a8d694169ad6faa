"""`hkd tune`: Optuna finds a guided loss's weight on the tiny synthetic set; a killed worker's trial
is run again; two workers share one study (journal storage) with every trial run once."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback

from hkd.errors import ConfigError
from hkd.run.tune import Parameter, tune
from tests.conftest import REPO, TINY

PARAM = ["method.weight=log(0.01,100)"]


def overrides(tmp_path: Path) -> list[str]:
    return [*TINY, "method.name=rrr", f"output_dir={tmp_path / 'runs'}",
            f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic.val_shortcut=random", "name=tuned"]


def finished(folder: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="hkd", storage=f"sqlite:///{folder / 'study.db'}")
    return [t for t in study.trials if t.state.is_finished()]


def test_three_trials_find_a_weight_and_record_it(tmp_path):
    folder, best = tune("quickstart", overrides(tmp_path), PARAM, trials=3)
    assert 0.01 <= best["params"]["method.weight"] <= 100
    assert best["overrides"] == [f"method.weight={best['params']['method.weight']}"]
    assert json.loads((folder / "best.json").read_text()) == best
    with open(folder / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["state"] for row in rows] == ["COMPLETE"] * 3
    values = [float(row["val/balanced_accuracy"]) for row in rows]
    assert best["value"] == max(values)
    summary = json.loads((Path(best["run_dir"]) / "summary.json").read_text())
    assert summary["val"]["balanced_accuracy"] == pytest.approx(best["value"])
    weights = {float(row["method.weight"]) for row in rows}
    assert len(weights) == 3  # three different weights tried


def test_a_killed_study_continues(tmp_path):
    command = [sys.executable, "-m", "hkd", "tune", "quickstart", *overrides(tmp_path),
               "--param", PARAM[0], "--trials", "3", "--heartbeat", "1"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 240
    folder = None
    while time.time() < deadline:
        folders = list((tmp_path / "runs" / "tuned").glob("tune-*"))
        if folders and (folders[0] / "study.db").is_file():
            folder = folders[0]
            try:
                if finished(folder):
                    break
            except Exception:  # the database is being created
                pass
        time.sleep(0.5)
    process.kill()
    process.wait()
    assert folder is not None and len(finished(folder)) >= 1
    first = finished(folder)[0]
    _, best = tune("quickstart", overrides(tmp_path), PARAM, trials=3, study=str(folder), heartbeat=1)
    trials = optuna.load_study(study_name="hkd", storage=f"sqlite:///{folder / 'study.db'}").trials
    states = optuna.trial.TrialState
    done = [t for t in trials if t.state in (states.COMPLETE, states.PRUNED)]
    assert len(done) == 3
    assert not [t for t in trials if t.state == states.RUNNING]
    assert trials[first.number].params == first.params  # the finished trial was kept, not re-run
    assert best["n_trials"] == len(trials)
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in done} - {None}
    assert retried == {t.number for t in trials if t.state == states.FAIL}  # each killed trial ran again


def test_two_workers_share_one_study_and_run_each_trial_once(tmp_path):
    folder = tmp_path / "study"
    command = [sys.executable, "-m", "hkd", "tune", "quickstart", *overrides(tmp_path), "--param", PARAM[0],
               "--trials", "4", "--study", str(folder), "--storage", "journal"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)]
    time.sleep(3)  # the first worker makes the journal; the second joins it
    workers.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE))
    for worker in workers:
        assert worker.wait(timeout=900) == 0, worker.stderr.read().decode()[-2000:]
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    trials = optuna.load_study(study_name="hkd", storage=storage).trials
    states = optuna.trial.TrialState
    assert all(t.state in (states.COMPLETE, states.PRUNED) for t in trials)  # none lost or left running
    assert 4 <= len(trials) <= 5  # N finished; the other worker's last trial may finish too
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == len(trials) and all(Path(run_dir).is_dir() for run_dir in run_dirs)
    on_disk = sorted(p.parent.parent.name for p in folder.glob("trial*/*/summary.json"))
    assert on_disk == sorted(f"trial{t.number}" for t in trials)  # every trial trained exactly once
    assert len({t.params["method.weight"] for t in trials}) == len(trials)  # the workers' samplers differ


def test_bad_spaces_are_named():
    with pytest.raises(ConfigError, match="--param method.weight=log\\(1\\)"):
        Parameter.parse("method.weight=log(1)")
    with pytest.raises(ConfigError, match="expected KEY=log"):
        Parameter.parse("method.weight=uniform(0,1)")
    assert Parameter.parse("imil.fill=choice(zero,inpaint)").args == ("zero", "inpaint")
