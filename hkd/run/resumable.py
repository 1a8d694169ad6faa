"""Train one run in a process of its own, resumable: a run directory that holds a begun run is
continued from its last checkpoint (``resume=``) instead of started again. ``hkd cv`` trains its
folds with it, the benchmark matrices their rows (also with another commit's code)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hkd.run.run_dir import RUN_ID_ENV


def train_resumable(experiment: str, overrides: list[str], run_dir: Path, label: str, *,
                    code: Path | None = None, epoch_lines: bool = True) -> Path:
    """Train (or continue) the run that lands in ``run_dir`` (the overrides' ``output_dir`` and
    ``name`` must put it there: its folder name is the run id), streaming its output with
    ``[label]`` in front. ``code``: run another checkout's ``hkd`` (its own experiments). Raises
    RuntimeError naming the run directory when the run fails or stops without a summary."""
    resume = [f"resume={run_dir}"] if (run_dir / "config.yaml").is_file() else []
    lines = ["logging.epoch_lines=true"] if epoch_lines else []
    command = [sys.executable, "-u", "-m", "hkd", "train", experiment, *overrides, *lines, *resume]
    env = {**os.environ, RUN_ID_ENV: run_dir.name}
    if code is not None:
        env.pop("HKD_EXPERIMENTS", None)  # another checkout reads its own experiments
    print(f"[{label}] {'continuing' if resume else 'training'} {run_dir}", flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                          cwd=code) as process:
        tail: list[str] = []
        for line in process.stdout:
            print(f"[{label}] {line.rstrip()}", flush=True)
            tail = [*tail[-40:], line]
    if process.returncode != 0:
        raise RuntimeError(f"{label} failed (exit {process.returncode}); run it again to continue from its "
                           f"last checkpoint ({run_dir}):\n{''.join(tail)}")
    if not (run_dir / "summary.json").is_file():
        raise RuntimeError(f"{label} stopped without a summary in {run_dir} (an IMIL queue round waiting "
                           "for review? use a simulated oracle)")
    return run_dir
