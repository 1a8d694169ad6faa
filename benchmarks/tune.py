"""Tune each guided loss's weight and HKD's ``alpha`` / ``kd_epochs`` on the synthetic benchmark's
shortcut-free validation split (``hkd tune``: Optuna, TPE, median pruning), and keep the best
settings in ``benchmarks/results/tuned.json`` (every trial in ``tuned/METHOD.csv``), from which
the ``methods_tuned`` matrix trains.

    python -m benchmarks.tune                      # every method, 10 finished trials each
    python -m benchmarks.tune --only rrr --trials 20

Resumable: each study lives in ``runs/bench/tune/METHOD/tune-*/``; a second call continues it
(a trial a killed process left running is marked failed) until it has ``--trials`` finished
trials. Tuning uses seed 42 (its own data draw and split), the matrices seeds 0-4.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

from hkd.atomic import atomic_write_json, atomic_write_text
from hkd.run.run_dir import code_version
from hkd.run.tune import tune

REPO = Path(__file__).resolve().parents[1]
TUNED = REPO / "benchmarks" / "results" / "tuned.json"
TRIALS = REPO / "benchmarks" / "results" / "tuned"  # every study's trials, METHOD.csv
TUNING_SEED = 42
SHORTCUT_FREE_VAL = ["data.synthetic.val_shortcut=random"]  # selection without the shortcut

# method -> (experiment, Optuna spaces): every guided weight over two decades either side of 1;
# HKD's a_0 within [0.05, 1] (the loss is a_e * MSE + (1 - a_e) * CE) and its decay length in epochs
SPACES: dict[str, tuple[str, list[str]]] = {
    **{method: (f"synthetic_{method}", ["method.weight=log(0.01,100)"])
       for method in ("rrr", "gradmask", "actdiff", "cam_align")},
    "hkd": ("synthetic_hkd", ["hkd.alpha=float(0.05,1.0)", "hkd.kd_epochs=int(1,12)"]),
}


def existing_study(folder: Path) -> str | None:
    """The study a previous call started in ``folder`` (to continue it), if any."""
    studies = sorted(folder.glob("tune-*/study.db"))
    return str(studies[-1].parent) if studies else None


def tune_method(method: str, trials: int, runs: Path) -> dict:
    """Run (or continue) one method's study; the record kept in tuned.json."""
    experiment, spaces = SPACES[method]
    overrides = [*SHORTCUT_FREE_VAL, f"seed={TUNING_SEED}", f"output_dir={runs}", f"name={method}",
                 "logging.wandb=disabled", "logging.progress_bar=false"]
    folder, best = tune(experiment, overrides, spaces, trials, study=existing_study(runs / method))
    return {"experiment": experiment, "spaces": spaces, "fixed": [*SHORTCUT_FREE_VAL, f"seed={TUNING_SEED}"],
            **{key: best[key] for key in ("metric", "value", "params", "overrides", "n_trials")},
            "git_commit": code_version(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "study": str(folder.relative_to(REPO)) if folder.is_relative_to(REPO) else str(folder)}


def keep_trials(study: Path, method: str) -> Path:
    """The study's ``trials.csv`` as ``benchmarks/results/tuned/METHOD.csv`` (run folders made
    relative to the repository), so every trial's score is in a committed file."""
    rows = list(csv.DictReader(io.StringIO((study / "trials.csv").read_text())))
    for row in rows:
        row["run_dir"] = row["run_dir"].replace(f"{REPO}/", "")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(TRIALS / f"{method}.csv", text.getvalue())


def tuned_overrides(method: str) -> list[str]:
    """The best overrides ``benchmarks/tune.py`` found for ``method``."""
    tuned = json.loads(TUNED.read_text()) if TUNED.is_file() else {}
    if method not in tuned:
        raise SystemExit(f"{TUNED}: no tuned settings for {method}; "
                         f"run python -m benchmarks.tune --only {method}")
    return tuned[method]["overrides"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", choices=sorted(SPACES), default=None)
    parser.add_argument("--trials", type=int, default=10, help="finished trials per study")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench" / "tune")
    args = parser.parse_args()
    for method in args.only or list(SPACES):
        record = tune_method(method, args.trials, args.runs)
        tuned = json.loads(TUNED.read_text()) if TUNED.is_file() else {}
        atomic_write_json(TUNED, {**tuned, method: record})  # each finished study is kept at once
        keep_trials(REPO / record["study"], method)
        print(f"{method}: {record['overrides']} ({record['metric']} {record['value']:.3f}, "
              f"{record['n_trials']} trials)", flush=True)


if __name__ == "__main__":
    main()
