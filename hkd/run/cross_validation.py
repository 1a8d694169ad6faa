"""``hkd cv`` and ``hkd repeat``: a group of ordinary ``hkd train`` runs — every fold of a K-fold
cross-validation, or repeated runs of one split (the papers' protocol: ``data.test_fraction=0``
for train / valid only) — over one or more seeds, streamed, resumable, and aggregated into one
report.

Each run is an ordinary ``hkd train`` run in its own process, with a run id derived from the
group's settings, so a second call finds its runs: finished ones are skipped, an interrupted one
continues with ``resume=``. Each run's progress is streamed as it trains (a line per epoch,
prefixed ``[fold k/K seed s]`` or ``[seed s]``) and its result is recorded as it ends; the report,
``OUTPUT_DIR/NAME/cv-<id>.md`` or ``repeat-<id>.md``, is the mean ± std over all runs, of the test
metrics and of the best checkpoints' validation metrics.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hkd.atomic import atomic_write_json, atomic_write_text
from hkd.config import load_config
from hkd.errors import ConfigError
from hkd.reporting.compare import VAL_COLUMNS, aggregate, find_summaries, markdown_table
from hkd.run.resumable import train_resumable


def cv_id(experiment: str, overrides: list[str]) -> str:
    """Names one group of runs: the experiment and its overrides (seeds and folds excluded)."""
    kept = sorted(o for o in overrides if not o.startswith(("seed=", "data.fold=")))
    return hashlib.sha256(json.dumps([experiment, kept]).encode()).hexdigest()[:10]


def run_group(experiment: str, overrides: list[str], seeds: list[int] | None,
              folds: int) -> tuple[Path, str]:
    """Train (or finish) every seed's runs — folds 0..K-1, or one run when ``folds`` is 0 — and
    write the report; its path and its table."""
    cfg = load_config(experiment, overrides)
    seeds = list(seeds) if seeds else [int(cfg.seed)]
    kind = "cv" if folds else "repeat"
    identity = cv_id(experiment, overrides)
    base = Path(cfg.output_dir) / cfg.name
    state_path = base / f"{kind}-{identity}.json"
    done: dict[str, str] = {}
    for seed in seeds:
        for fold in range(folds) if folds else [None]:
            label = f"seed {seed}" if fold is None else f"fold {fold + 1}/{folds} seed {seed}"
            run_dir = base / (f"{kind}-{identity}-seed{seed}" + ("" if fold is None else f"-fold{fold}"))
            if (run_dir / "summary.json").is_file():
                print(f"[{label}] finished earlier: {run_dir}", flush=True)
            else:
                fold_key = [] if fold is None else [f"data.fold={fold}"]
                train_resumable(experiment, [*overrides, f"seed={seed}", *fold_key], run_dir, label)
            done[f"seed {seed}" + ("" if fold is None else f" fold {fold}")] = str(run_dir)
            atomic_write_json(state_path, {"experiment": experiment, "overrides": overrides,
                                           "seeds": seeds, "folds": folds, "finished": done})
    summaries = find_summaries([Path(run_dir) / "summary.json" for run_dir in done.values()])
    tables = [markdown_table(aggregate(summaries, "name"))] if any(s.get("test") for s in summaries) else []
    tables.append(markdown_table(aggregate(summaries, "name", VAL_COLUMNS), columns=VAL_COLUMNS))
    table = "\n\n".join(tables)
    runs = "\n".join(f"- {key}: {path}" for key, path in done.items())
    over = (f"{folds}-fold cross-validation" if folds else "repeated runs") + \
        (f" x {len(seeds)} seeds" if len(seeds) > 1 else "")
    report = atomic_write_text(base / f"{kind}-{identity}.md", f"# {cfg.name}: {over} (mean ± std over "
                                                              f"{len(done)} runs)\n\n{table}\n\n{runs}\n")
    return report, table


def run_folds(experiment: str, overrides: list[str], seeds: list[int] | None = None) -> tuple[Path, str]:
    """``hkd cv``: folds 0..K-1 for each seed."""
    folds = int(load_config(experiment, overrides).data.folds)
    if folds < 2:
        raise ConfigError("hkd cv needs K-fold splits: add data.folds=K (K >= 2, e.g. data.folds=5)")
    return run_group(experiment, overrides, seeds, folds)


def run_repeats(experiment: str, overrides: list[str], seeds: list[int]) -> tuple[Path, str]:
    """``hkd repeat``: the same split trained once per seed (the papers' repeated runs)."""
    if len(seeds) < 2:
        raise ConfigError("hkd repeat needs two or more seeds, e.g. --seeds 0 1 2 3 4")
    return run_group(experiment, overrides, seeds, folds=0)
