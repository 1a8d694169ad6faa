"""The shipped W&B sweep file: wandb's own code reads it and builds the agent's command; every
proposal is a valid hkd configuration; one proposal runs as the agent runs it (offline), logging
the student into the agent's run and the HKD teacher to its CSV file only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wandb.apis.public.sweeps import _validate_config_and_fill_distribution
from wandb.sdk.launch.sweeps import utils as sweep_utils

from hkd.config import experiments_dir, load_config
from tests.conftest import REPO, TINY

SWEEP = experiments_dir() / "sweeps" / "hkd_alpha.yaml"


def agent_command(sweep: dict, proposal: dict) -> list[str]:
    """The command `wandb agent` runs for a proposal: wandb's own command and argument builders,
    with the macros replaced as its agent does (wandb/wandb_agent.py)."""
    args = {key: {"value": value} for key, value in proposal.items()}
    variables = sweep_utils.create_sweep_command_args({"args": args})
    variables |= {"env": ["/usr/bin/env"], "program": [sweep["program"]], "interpreter": ["python"]}
    command = []
    for chunk in sweep_utils.create_sweep_command(list(sweep["command"])):
        chunk = str(chunk)
        macro = chunk.startswith("${") and chunk.endswith("}")
        command += (variables.get(chunk[2:-1]) or []) if macro else [chunk]
    return command


def load_sweep() -> dict:
    return yaml.safe_load(SWEEP.read_text())


def test_wandb_reads_the_sweep_and_every_proposal_is_a_valid_configuration():
    filled = _validate_config_and_fill_distribution(load_sweep())
    assert filled["parameters"]["hkd.alpha"]["distribution"] == "uniform"
    assert filled["metric"] == {"name": "val/balanced_accuracy", "goal": "maximize"}
    alpha, kd_epochs = filled["parameters"]["hkd.alpha"], filled["parameters"]["hkd.kd_epochs"]
    for proposal in [{"hkd.alpha": a, "hkd.kd_epochs": k} for a in (alpha["min"], alpha["max"])
                     for k in kd_epochs["values"]]:
        command = agent_command(filled, proposal)
        assert command[:3] == ["/usr/bin/env", "hkd", "train"]
        cfg = load_config(command[3], command[4:])
        assert (cfg.hkd.alpha, cfg.hkd.kd_epochs) == (proposal["hkd.alpha"], proposal["hkd.kd_epochs"])
        assert cfg.method.name == "hkd" and cfg.logging.wandb == "online"


def test_a_proposal_runs_as_the_agent_runs_it(tmp_path):
    command = agent_command(load_sweep(), {"hkd.alpha": 0.3, "hkd.kd_epochs": 2})
    command += [*TINY, "trainer.max_epochs=2", "hkd.teacher_epochs=1", f"output_dir={tmp_path / 'runs'}",
                f"data.cache_dir={tmp_path / 'cache'}", "logging.wandb=offline"]  # shrunk, offline
    env = {**os.environ, "WANDB_SWEEP_ID": "sweep123", "WANDB_RUN_ID": "agentrun1", "WANDB_MODE": "offline",
           "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    assert load_config(str(run_dir / "config.yaml")).hkd.alpha == pytest.approx(0.3)
    assert [p.name.rsplit("-", 1)[1] for p in (run_dir / "wandb").glob("offline-run-*")] == ["agentrun1"]
    assert (run_dir / "teacher" / "metrics.csv").is_file() and not (run_dir / "teacher" / "wandb").exists()
