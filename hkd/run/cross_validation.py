"""``hkd cv``: every fold of a K-fold cross-validation (over one or more seeds), streamed, resumable,
and aggregated into one report.

Each fold is an ordinary ``hkd train`` run in its own process, with a run id derived from the
cross-validation's settings, so a second call finds its folds: finished ones are skipped, an
interrupted one continues with ``resume=``. Each fold's progress is streamed as it trains (a line
per epoch, prefixed ``[fold k/K seed s]``) and its result is recorded as it ends; the report,
``OUTPUT_DIR/NAME/cv-<id>.md``, is the mean ± std over all folds and seeds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hkd.atomic import atomic_write_json, atomic_write_text
from hkd.config import load_config
from hkd.errors import ConfigError
from hkd.reporting.compare import aggregate, find_summaries, markdown_table
from hkd.run.resumable import train_resumable


def cv_id(experiment: str, overrides: list[str]) -> str:
    """Names one cross-validation: the experiment and its overrides (seeds and folds excluded)."""
    kept = sorted(o for o in overrides if not o.startswith(("seed=", "data.fold=")))
    return hashlib.sha256(json.dumps([experiment, kept]).encode()).hexdigest()[:10]


def run_folds(experiment: str, overrides: list[str], seeds: list[int] | None = None) -> tuple[Path, str]:
    """Train (or finish) folds 0..K-1 for each seed; return the report's path and its table."""
    cfg = load_config(experiment, overrides)
    if cfg.data.folds < 2:
        raise ConfigError("hkd cv needs K-fold splits: add data.folds=K (K >= 2, e.g. data.folds=5)")
    seeds = list(seeds) if seeds else [int(cfg.seed)]
    identity = cv_id(experiment, overrides)
    base = Path(cfg.output_dir) / cfg.name
    state_path = base / f"cv-{identity}.json"
    done: dict[str, str] = {}
    for seed in seeds:
        for fold in range(cfg.data.folds):
            label = f"fold {fold + 1}/{cfg.data.folds} seed {seed}"
            run_dir = base / f"cv-{identity}-seed{seed}-fold{fold}"
            if (run_dir / "summary.json").is_file():
                print(f"[{label}] finished earlier: {run_dir}", flush=True)
            else:
                train_resumable(experiment, [*overrides, f"seed={seed}", f"data.fold={fold}"], run_dir, label)
            done[f"seed {seed} fold {fold}"] = str(run_dir)
            atomic_write_json(state_path, {"experiment": experiment, "overrides": overrides,
                                           "seeds": seeds, "folds": cfg.data.folds, "finished": done})
    summaries = find_summaries([Path(run_dir) / "summary.json" for run_dir in done.values()])
    table = markdown_table(aggregate(summaries, "name"))
    runs = "\n".join(f"- {key}: {path}" for key, path in done.items())
    over = f"{cfg.data.folds}-fold cross-validation" + (f" x {len(seeds)} seeds" if len(seeds) > 1 else "")
    report = atomic_write_text(base / f"cv-{identity}.md", f"# {cfg.name}: {over} (mean ± std over "
                                                           f"{len(done)} runs)\n\n{table}\n\n{runs}\n")
    return report, table
