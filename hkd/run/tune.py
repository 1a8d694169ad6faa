"""``hkd tune NAME --param KEY=SPACE ... --trials N``: tune an experiment's keys with Optuna on its
validation split (use a shortcut-free one: ``data.synthetic.val_shortcut=random`` or
``data.shortcut.val=random``), pruning poor trials with Optuna's Lightning callback (median
pruning from the fourth trial, in the second half of a trial's epochs).

A study lives in its folder (``OUTPUT_DIR/NAME/tune-<id>/``): ``study.db`` (Optuna's SQLite
storage), one run directory per trial, ``trials.csv`` and ``best.json``. Run the same command
with ``--study FOLDER`` to continue it: trials a killed process left running are marked failed,
and trials are added until N have finished (completed or pruned).

Spaces: ``log(a,b)`` (float, log scale), ``float(a,b)``, ``int(a,b)``, ``choice(a,b,...)``.
"""

from __future__ import annotations

import json
import re
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
    if study:
        folder = Path(study)
        if not (folder / "study.db").is_file():
            raise ConfigError(f"--study {folder}: no study.db there (start a study without --study)")
        return folder
    cfg = load_config(experiment, overrides)
    folder = Path(cfg.output_dir) / cfg.name / f"tune-{run_id()}"
    folder.mkdir(parents=True)
    return folder


def tune(experiment: str, overrides: list[str], parameters: list[str], trials: int,
         study: str | None = None, metric: str | None = None) -> tuple[Path, dict]:
    """Run the study until ``trials`` trials have finished; its folder and best trial."""
    try:
        import optuna
        from optuna.trial import TrialState
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
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}")
    study_obj = optuna.create_study(study_name="hkd", storage=storage, direction=direction,
                                    load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=base.seed),
                                    pruner=pruner(optuna, base))
    for trial in study_obj.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # its process was killed (FrozenTrial keeps the storage's id only in this attribute)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)

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

    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    remaining = trials - len(study_obj.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study_obj.optimize(objective, n_trials=remaining, catch=())
    return folder, write_study_record(study_obj, folder, monitor, space)


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
