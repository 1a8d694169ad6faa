"""Run a benchmark matrix, ``benchmarks/matrices/NAME.yaml``: every row x seed (x fold) in a process of
its own, resumable; each finished run's record is appended to ``benchmarks/results/NAME.jsonl``, from
which ``make results`` regenerates the tables without training.

    python -m benchmarks.matrix kermany_shortcut_cf                 # the matrix's seeds (its `seeds`)
    python -m benchmarks.matrix imil --only baseline --seeds 0 1 2

A record stands for a row's run exactly when the row's resolved configuration today hashes to the
record's ``config_hash``. ``benchmarks/run_configs.jsonl`` keeps the configuration behind every
hash, so a key added to hkd since a record was made is read at its default: a change of a default
re-trains exactly the runs it touches, a new key none. Any matrix's record of the same
configuration, seed and fold stands in (recorded under the row, with ``reused_from``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import NamedTuple

import yaml
from omegaconf import DictConfig, OmegaConf

from hkd.atomic import append_json_line, atomic_write_json
from hkd.config import load_config, to_dotlist, typed_base
from hkd.run.last_epoch import checkpoint_epoch
from hkd.run.resumable import train_resumable
from hkd.run.run_dir import RUN_ID_ENV

REPO = Path(__file__).resolve().parents[1]
MATRICES = REPO / "benchmarks" / "matrices"
RECORDS = REPO / "benchmarks" / "results"  # NAME.jsonl, the records every table is made from
RUN_CONFIGS = REPO / "benchmarks" / "run_configs.jsonl"  # {"hash", "config"} per configuration
SHARED = REPO.parent / "shared" / "datasets"
# runs that rows use as inputs ("{NAME}" in their overrides): hkd prior train EXPERIMENT OVERRIDES
PREREQUISITES = {"lung_prior": ("covid_cxr_lung_prior", ["data.root={shared}/covid-chestxray"])}
# keys that say where a run is written and how it is shown, not what it computes (seed and fold are
# a record's own fields)
BOOKKEEPING = ("name", "output_dir", "resume", "seed", "data.fold", "data.cache_dir", "logging.")
MISSING = "<missing>"


class Row(NamedTuple):
    """A row: an experiment with overrides, trained for every seed; ``ceiling``: the shortcut-free
    run the report measures the gap to; ``refit_of``: another row whose runs ``hkd refit`` makes this
    row's (its experiment and overrides are that row's)."""

    name: str
    experiment: str
    overrides: list[str]
    ceiling: bool = False
    refit_of: str | None = None


REFIT = "hkd refit: logistic regression on swap views"  # in a refit row's identity


class Matrix(NamedTuple):
    name: str
    rows: list[Row]
    seeds: list[int]
    folds: list[int | None]
    command: str | None  # what makes the table, where not ``python -m benchmarks.matrix NAME``
    references: dict[str, dict]  # row -> {matrix, row}: read against another matrix's row
    needs: tuple[str, ...] = ()  # record fields its tables read (test_last_epoch): older records do not stand


def flat(items: list) -> list[str]:
    """A row's overrides, YAML aliases of lists spliced in."""
    return [str(x) for item in items for x in (flat(item) if isinstance(item, list) else [item])]


def matrix_names() -> list[str]:
    return sorted(path.stem for path in MATRICES.glob("*.yaml"))


def load_matrix(name: str) -> Matrix:
    """``benchmarks/matrices/NAME.yaml``; a row's ``tuned: METHOD`` appends what benchmarks/tune.py
    found for METHOD."""
    path = MATRICES / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"{path}: no such matrix (there are {', '.join(matrix_names())})")
    try:
        spec = yaml.safe_load(path.read_text())
        missing = [row for row in spec["rows"] if not (row.get("name") and (row.get("experiment")
                                                                              or row.get("refit_of")))]
        if missing:
            raise KeyError(f"a row without a name or experiment: {missing[0]}")
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise SystemExit(f"{path}: not a matrix (rows of name, experiment, overrides): {error}") from error
    rows: list[Row] = []
    for row in spec["rows"]:
        if "refit_of" in row:
            source = next((r for r in rows if r.name == row["refit_of"]), None)
            if source is None:
                raise SystemExit(f"{path}: row {row['name']!r} refits {row['refit_of']!r}, not a row "
                                 "above it")
            rows.append(Row(row["name"], source.experiment, source.overrides, bool(row.get("ceiling")),
                            source.name))
            continue
        overrides = flat(row.get("overrides") or [])
        if "tuned" in row:
            from benchmarks.tune import tuned_overrides

            overrides += tuned_overrides(row["tuned"])
        rows.append(Row(row["name"], row["experiment"], overrides, bool(row.get("ceiling"))))
    return Matrix(name, rows, spec.get("seeds", [0, 1, 2]), list(range(spec["folds"])) if "folds" in spec
                  else [None], spec.get("command"), spec.get("references", {}), tuple(spec.get("needs", ())))


def matrix_rows(name: str) -> dict[str, Row]:
    return {row.name: row for row in load_matrix(name).rows}


def slug(label: str) -> str:
    return re.sub(r"[=+(),]", "", label.replace("+", "plus").replace(" ", "_"))


def placeholders(override: str) -> str:
    """``{shared}`` (the shared data sets) and ``{PREREQUISITE}`` (its run) replaced."""
    override = override.replace("{shared}", str(SHARED))
    for name in PREREQUISITES:
        if "{" + name + "}" in override:
            override = override.replace("{" + name + "}", str(prerequisite(name)))
    return override


def run_config(row: Row, seed: int, fold: int | None) -> DictConfig:
    folded = [] if fold is None else [f"data.fold={fold}"]
    return load_config(row.experiment, [*map(placeholders, row.overrides), *folded, f"seed={seed}"])


def row_identity(row: Row, seed: int, fold: int | None) -> dict:
    """What the row's run computes (a refit row: its source's run, refitted)."""
    found = identity(run_config(row, seed, fold))
    return {**found, "refit": REFIT} if row.refit_of else found


def identity(cfg: DictConfig | dict) -> dict:
    """What a run computes: the resolved configuration as ``{dotted key: value}`` without the
    bookkeeping keys, the shared data sets and prerequisites named as the rows name them."""
    flat_config = to_dotlist(cfg) if isinstance(cfg, DictConfig) else cfg
    places = {str(SHARED): "{shared}"}
    for name in PREREQUISITES:  # committed, or trained by this clone
        for path in (prerequisite(name, train=False), trained_here(name)):
            places[str(path)] = "{" + name + "}"

    def portable(value: object) -> object:
        if isinstance(value, str):
            for path, name in places.items():
                value = value.replace(path, name)
        return value

    return {key: portable(value) for key, value in flat_config.items()
            if not any(key == b or (b.endswith(".") and key.startswith(b)) for b in BOOKKEEPING)}


def digest(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


@cache
def defaults() -> dict:
    return identity(typed_base())


def as_today(config: dict) -> dict:
    """A recorded configuration read with today's keys: a key added since, at its default."""
    return {**defaults(), **config}


def run_configs() -> dict[str, dict]:
    if not RUN_CONFIGS.is_file():
        return {}
    return {entry["hash"]: entry["config"] for entry in map(json.loads, RUN_CONFIGS.read_text().splitlines())}


def keep_config(config: dict) -> str:
    """Add a run's configuration to ``run_configs.jsonl`` (once); its hash."""
    key = digest(config)
    if key not in run_configs():
        append_json_line(RUN_CONFIGS, {"hash": key, "config": config})
    return key


def recorded_run(matrix: str, row: Row, seed: int, fold: int | None, wanted: str,
                 needs: tuple[str, ...] = ()) -> dict | None:
    """The record standing for this row's run: the matrix's own under the row's name first, then
    any matrix's of the same configuration (``wanted``: its hash today) that has the fields the
    matrix ``needs``."""
    configs = run_configs()
    today = {key: digest(as_today(config)) for key, config in configs.items()}
    own = RECORDS / f"{matrix}.jsonl"
    files = [own, *sorted(path for path in RECORDS.glob("*.jsonl") if path != own)]
    for path in (path for path in files if path.is_file()):
        for line in reversed(path.read_text().splitlines()):
            record = json.loads(line)
            if (record.get("seed"), record.get("fold")) != (seed, fold) \
                    or today.get(record.get("config_hash")) != wanted \
                    or any(record.get(field) is None for field in needs) \
                    or (path == own and record["name"] != row.name):
                continue
            if path == own:
                return record
            reused = {key: value for key, value in record.items() if key != "ceiling"}
            return {**reused, "matrix": matrix, "name": row.name,
                    **({"ceiling": True} if row.ceiling else {}),
                    "reused_from": f"{path.stem}: {record['name']}"}
    return None


def record_of(matrix: str, row: Row, run_dir: Path, config: dict | None = None) -> dict:
    """What the results files keep of a finished run: its metrics and where they came from
    (``config``: its identity, where not its ``config.yaml``'s)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    kept = ("seed", "fold", "test", "explanations", "val", "test_ci", "imil_edited",
            "imil_clinician_edits", "skipped_batches", "duration_s", "git_commit", "splits",
            "prior_generator", "epochs", "val_last_epoch", "test_last_epoch")
    rounds = [{"round": r["round"], "epoch": r["epoch"], "n_selected": r.get("n_selected"),
               "n_edited": len(r.get("edited", [])), "n_propagated": len(r.get("propagated", []))}
              for r in summary.get("imil_rounds", [])]
    made = datetime.fromtimestamp((run_dir / "summary.json").stat().st_mtime, timezone.utc)
    return {"matrix": matrix, "name": row.name, "experiment": row.experiment,
            **({"ceiling": True} if row.ceiling else {}), **{key: summary.get(key) for key in kept},
            "best_epoch": checkpoint_epoch(summary.get("best_checkpoint")), "imil_rounds": rounds or None,
            "teacher": {key: summary["teacher"].get(key) for key in ("epochs", "test_on_roi")}
            if "teacher" in summary else None,  # HKD's stage 1 on ROI images
            "overrides": row.overrides,
            "config_hash": keep_config(config or identity(OmegaConf.load(run_dir / "config.yaml"))),
            "date": made.isoformat(timespec="seconds"), "machine": machine()}


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def train_row(matrix: str, row: Row, seed: int, fold: int | None, runs: Path,
              wanted: str | None = None) -> Path | None:
    """The row's run directory for this seed (and fold), trained unless it finished with the row's
    configuration (a begun one continues from its last checkpoint, one of another configuration
    starts again); None when training failed. ``wanted``: the row's configuration hash, when the
    caller has it already."""
    run_id = f"seed{seed}" if fold is None else f"seed{seed}-fold{fold}"
    run_dir = runs / matrix / slug(row.name) / run_id
    wanted = wanted or digest(identity(run_config(row, seed, fold)))
    if (run_dir / "config.yaml").is_file():
        if digest(as_today(identity(OmegaConf.load(run_dir / "config.yaml")))) != wanted:
            shutil.rmtree(run_dir)
        elif (run_dir / "summary.json").is_file():
            return run_dir
    folded = [] if fold is None else [f"data.fold={fold}"]
    try:
        train_resumable(row.experiment, [*map(placeholders, row.overrides), *folded, *quiet(run_dir, seed)],
                        run_dir, f"{row.name} {run_id}")
    except RuntimeError as error:
        print(f"FAILED {row.name} {run_id}:\n{error}", file=sys.stderr)
        return None
    summary = {**json.loads((run_dir / "summary.json").read_text()), "name": row.name}
    atomic_write_json(run_dir / "summary.json", summary)  # the row's name, as tables and reports show it
    print(f"{row.name} {run_id}: test balanced accuracy {summary['test']['balanced_accuracy']:.3f} "
          f"({summary['duration_s']:.0f} s)", flush=True)
    return run_dir


def refit_row(matrix: Matrix, row: Row, seed: int, fold: int | None, runs: Path) -> Path | None:
    """``hkd refit`` of the source row's run (trained first if it has not been) beside it."""
    from hkd.inference.refit import refit

    source = next(r for r in matrix.rows if r.name == row.refit_of)
    run_dir = train_row(matrix.name, source, seed, fold, runs)
    if run_dir is None:
        return None
    refitted = run_dir.with_name(f"{run_dir.name}-refit")
    if not (refitted / "summary.json").is_file():
        refit(run_dir, refitted)
    summary = {**json.loads((refitted / "summary.json").read_text()), "name": row.name}
    atomic_write_json(refitted / "summary.json", summary)
    print(f"{row.name} {run_dir.name}: test balanced accuracy {summary['test']['balanced_accuracy']:.3f}",
          flush=True)
    return refitted


def quiet(run_dir: Path, seed: int) -> list[str]:
    """Overrides that put a run in ``run_dir`` (OUTPUT_DIR/NAME/RUN_ID) and keep it off W&B."""
    return [f"seed={seed}", f"output_dir={run_dir.parents[1]}", f"name={run_dir.parent.name}",
            "logging.wandb=disabled", "logging.progress_bar=false"]


def prerequisite(name: str, train: bool = True) -> Path:
    """The run a matrix uses as an input (e.g. the saved lung generator): the committed one in
    ``benchmarks/artifacts/NAME`` (so every session's runs share it), else trained once."""
    committed = REPO / "benchmarks" / "artifacts" / name
    if (committed / "summary.json").is_file() or not train:
        return committed
    folder = trained_here(name)
    if not (folder / "summary.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        experiment, overrides = PREREQUISITES[name]
        print(f"training the prerequisite {name} ({experiment})", flush=True)
        result = subprocess.run([sys.executable, "-m", "hkd", "prior", "train", experiment,
                                 *map(placeholders, overrides), *quiet(folder, 0)], cwd=REPO,
                                env={**os.environ, RUN_ID_ENV: folder.name}, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"the prerequisite {name} failed:\n{result.stderr[-3000:]}")
    return folder


def trained_here(name: str) -> Path:
    return REPO / "runs" / "bench" / "prerequisites" / name / "seed0"


def run_matrix(matrix: Matrix, seeds: list[int], only: list[str] | None, runs: Path) -> None:
    """Every row x seed x fold not yet in the records, seed by seed (each finished seed is a whole
    table); records appended as runs finish."""
    from benchmarks.results import write_matrix

    records_file = RECORDS / f"{matrix.name}.jsonl"
    for seed in seeds:
        for fold in matrix.folds:
            for row in (row for row in matrix.rows if not only or row.name in only):
                config = row_identity(row, seed, fold)
                record = recorded_run(matrix.name, row, seed, fold, digest(config), matrix.needs)
                if record and "reused_from" not in record:
                    continue
                if record is None:
                    run_dir = refit_row(matrix, row, seed, fold, runs) if row.refit_of else \
                        train_row(matrix.name, row, seed, fold, runs, digest(config))
                    if run_dir is None:
                        continue
                    record = record_of(matrix.name, row, run_dir, config if row.refit_of else None)
                append_json_line(records_file, record)
    if records_file.is_file():
        print(write_matrix(records_file).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matrix", choices=matrix_names())
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the matrix's seeds")
    parser.add_argument("--only", nargs="*", default=None, help="rows to run (default: all)")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench",
                        help="where the run directories go (default runs/bench)")
    args = parser.parse_args()
    matrix = load_matrix(args.matrix)
    run_matrix(matrix, args.seeds or matrix.seeds, args.only, args.runs)


if __name__ == "__main__":
    main()
