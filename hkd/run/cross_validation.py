"""``hkd cv``: run every fold of a K-fold cross-validation and aggregate the folds' test metrics.

Each fold is an ordinary ``hkd train`` run (its own process and run directory, so DDP launchers
and W&B behave as for one run); the mean and spread over folds is written next to the runs as
``OUTPUT_DIR/NAME/cv-<first fold's run id>.md``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hkd.atomic import atomic_write_text
from hkd.config import load_config
from hkd.errors import ConfigError
from hkd.reporting.compare import aggregate, find_summaries, markdown_table


def run_folds(experiment: str, overrides: list[str]) -> tuple[Path, str]:
    """Train folds 0..K-1 one after another; return the report's path and its markdown table."""
    cfg = load_config(experiment, overrides)
    if cfg.data.folds < 2:
        raise ConfigError("hkd cv needs K-fold splits: add data.folds=K (K >= 2, e.g. data.folds=5)")
    run_dirs = []
    for fold in range(cfg.data.folds):
        command = [sys.executable, "-m", "hkd", "train", experiment, *overrides, f"data.fold={fold}"]
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            raise RuntimeError(f"fold {fold} of {cfg.data.folds} failed (exit {result.returncode}); "
                               f"the folds before it are in {', '.join(map(str, run_dirs)) or 'none'}")
        run_dir = Path(lines[-1])
        if not (run_dir / "summary.json").is_file():
            raise RuntimeError(f"fold {fold} stopped without a summary in {run_dir} (an IMIL queue round "
                               "waiting for review? cross-validate with a simulated oracle)")
        run_dirs.append(run_dir)
    table = markdown_table(aggregate(find_summaries(run_dirs), "name"))
    report = run_dirs[0].parent / f"cv-{run_dirs[0].name}.md"
    runs = "\n".join(f"- fold {fold}: {run_dir}" for fold, run_dir in enumerate(run_dirs))
    atomic_write_text(report, f"# {cfg.name}: {cfg.data.folds}-fold cross-validation "
                              f"(mean ± std over folds)\n\n{table}\n\n{runs}\n")
    return report, table
