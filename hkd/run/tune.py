"""``hkd tune NAME --param KEY=SPACE ... --trials N``: tune an experiment's keys with Optuna on its
validation split (use a shortcut-free one: ``data.synthetic.val_shortcut=random`` or
``data.shortcut.val=random``), pruning poor trials with Optuna's Lightning callback (median
pruning from the fourth trial, in the second half of a trial's epochs).

A study lives in its folder (``OUTPUT_DIR/NAME/tune-<id>/``, or ``--study FOLDER``): its Optuna
storage, one run directory per trial, ``trials.csv`` and ``best.json``. Several workers — processes
or machines — share one study by giving the same ``--study FOLDER`` (and ``--storage``): each asks
Optuna for the next trial until N have finished (completed or pruned; up to workers - 1 more may
finish, as trials already running are not stopped). The storage: ``sqlite`` (default,
``FOLDER/study.db``: processes on one machine), ``journal`` (``FOLDER/study.journal``, Optuna's
journal file: machines sharing a file system) or any RDB URL (``postgresql://...``). With an RDB
storage every running trial sends a heartbeat (``--heartbeat`` seconds); a trial whose worker was
killed goes stale after two missed beats, is marked failed and is run again by a live worker. A
journal has no heartbeat in Optuna: a killed worker's trial stays RUNNING and is not counted.

Spaces: ``log(a,b)`` (float, log scale), ``float(a,b)``, ``int(a,b)``, ``choice(a,b,...)``.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from hkd.atomic import atomic_write_csv, atomic_write_json
from hkd.config import load_config
from hkd.errors import ConfigError
from hkd.run.run_dir import run_id

SPACE = re.compile(r"^(?P<key>[\w.]+)=(?P<kind>log|float|int|choice)\((?P<args>[^()]*)\)$")


@dataclass(frozen=True)
class Parameter:
    key: str
    kind: str
    args: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Parameter:
        match = SPACE.match(text.replace(" ", ""))
        if not match:
            raise ConfigError(f"--param {text}: expected KEY=log(a,b), float(a,b), int(a,b) "
                              "or choice(a,b,...)")
        args = tuple(a for a in match["args"].split(",") if a)
        if match["kind"] != "choice" and len(args) != 2:
            raise ConfigError(f"--param {text}: {match['kind']}(low,high) takes two numbers")
        return cls(match["key"], match["kind"], args)

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.args))
        low, high = self.args
        if self.kind == "int":
            return trial.suggest_int(self.key, int(low), int(high))
        return trial.suggest_float(self.key, float(low), float(high), log=self.kind == "log")


def study_folder(experiment: str, overrides: list[str], study: str | None) -> Path:
    """``--study FOLDER`` (made if it is new, so workers started with the same FOLDER share it) or
    a new ``OUTPUT_DIR/NAME/tune-<id>/``."""
    if study:
        folder = Path(study)
    else:
        cfg = load_config(experiment, overrides)
        folder = Path(cfg.output_dir) / cfg.name / f"tune-{run_id()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_storage(optuna, folder: Path, storage: str | None, heartbeat: int):
    """The study's storage (see the module's docstring), with heartbeats and retries where Optuna
    has them (RDB storages)."""
    if storage == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "study.journal")))
    if storage not in (None, "sqlite") and "://" not in storage:
        raise ConfigError(f"--storage {storage}: expected sqlite, journal or a database URL "
                          "(e.g. postgresql://user@host/db)")
    url = f"sqlite:///{folder / 'study.db'}" if storage in (None, "sqlite") else storage
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
    return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                      heartbeat_stale_trial_callback=retry)


def tune(experiment: str, overrides: list[str], parameters: list[str], trials: int,
         study: str | None = None, metric: str | None = None, storage: str | None = None,
         heartbeat: int = 60) -> tuple[Path, dict]:
    """Take part in the study until ``trials`` trials have finished; its folder and best trial."""
    try:
        import optuna
        from optuna_integration import PyTorchLightningPruningCallback
    except ImportError as error:
        raise ConfigError("hkd tune needs Optuna: pip install 'hkd[tune]'") from error

    from hkd.run.experiment import run_experiment

    space = [Parameter.parse(text) for text in parameters]
    if not space:
        raise ConfigError("hkd tune needs at least one --param KEY=SPACE")
    base = load_config(experiment, overrides)
    monitor = metric or base.checkpoint.monitor
    direction = "maximize" if base.checkpoint.mode == "max" else "minimize"
    folder = study_folder(experiment, overrides, study)
    opened = open_storage(optuna, folder, storage, heartbeat)
    # a worker joining a study (--study) seeds its sampler apart from the others', or workers
    # started together would propose the same values; a new study's first worker uses the seed
    seed = int(base.seed) + (os.getpid() if study else 0)
    study_obj = optuna.create_study(study_name="hkd", storage=opened, direction=direction,
                                    load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed),
                                    pruner=pruner(optuna, base))
    beats = isinstance(opened, optuna.storages.RDBStorage)

    def objective(trial) -> float:
        values = [f"{p.key}={p.suggest(trial)}" for p in space]
        cfg = load_config(experiment, [*overrides, *values, f"output_dir={folder}",
                                       f"name=trial{trial.number}"])
        run_dir = run_experiment(cfg, extra_callbacks=[PyTorchLightningPruningCallback(trial, monitor)])
        trial.set_user_attr("run_dir", str(run_dir))
        value = json.loads((run_dir / "summary.json").read_text())["val"].get(monitor.split("/", 1)[1])
        if value is None:
            raise ConfigError(f"hkd tune: the runs record no {monitor} (see --metric)")
        return float(value)

    while (step := next_step(study_obj, trials, beats)) != "done":
        if step == "wait":  # the last trials are running elsewhere (or their worker died: stale soon)
            time.sleep(heartbeat)
        else:
            study_obj.optimize(objective, n_trials=1, catch=())
    return folder, write_study_record(study_obj, folder, monitor, space)


def next_step(study, trials: int, beats: bool) -> str:
    """``run`` another trial, ``wait`` for running ones, or ``done`` (``trials`` have finished).
    Where the storage ``beats``, stale trials (a killed worker's) are failed and queued again first."""
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    if beats:
        fail_stale_trials(study)
    counted = (TrialState.COMPLETE, TrialState.PRUNED)
    finished = len(study.get_trials(deepcopy=False, states=counted))
    if finished >= trials:
        return "done"
    active = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,) if beats else ())
    return "wait" if finished + len(active) >= trials else "run"


def pruner(optuna, cfg):
    """Median pruning from the fourth trial on, and only in the second half of a trial's epochs:
    validation curves are noisy early (on a shortcut-free split above all), and a trial pruned at
    epoch 1 has told the sampler little."""
    warmup = max(1, int(cfg.trainer.max_epochs) // 2)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=warmup)


def write_study_record(study, folder: Path, monitor: str, space: list[Parameter]) -> dict:
    """``trials.csv`` (one row per trial) and ``best.json`` (the best trial's overrides)."""
    rows = [{"trial": t.number, "state": t.state.name, monitor: t.value,
             **{p.key: t.params.get(p.key) for p in space}, "run_dir": t.user_attrs.get("run_dir")}
            for t in study.trials]
    atomic_write_csv(folder / "trials.csv", rows)
    best = study.best_trial
    record = {"metric": monitor, "value": best.value, "trial": best.number, "params": best.params,
              "overrides": [f"{key}={value}" for key, value in best.params.items()],
              "run_dir": best.user_attrs.get("run_dir"), "n_trials": len(study.trials)}
    atomic_write_json(folder / "best.json", record)
    return record
