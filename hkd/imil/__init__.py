"""IMIL (Rao et al. 2024): mine misprediction outliers during training, have a clinician mark their
irrelevant regions, remove those and train on. The ``imil.*`` keys are read in this package only;
the run layer asks it for its callbacks, Trainer options, tags and summary fields."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from hkd.errors import ConfigError
from hkd.imil.edits import edited_shares


def is_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.imil.enabled)


def check_config(cfg: DictConfig) -> None:
    """What the enumerated-key checks cannot say about the ``imil`` section."""
    if not isinstance(cfg.imil.margin, int) or cfg.imil.margin < 0:
        raise ConfigError(f"imil.margin={cfg.imil.margin!r} must be a whole number of pixels >= 0")


def callbacks(cfg: DictConfig, run_dir: str | Path) -> list[Callback]:
    """The IMIL callback of a run, or nothing when IMIL is off."""
    if not is_enabled(cfg):
        return []
    from hkd.imil.callback import IMILCallback

    return [IMILCallback(cfg, run_dir)]


def trainer_options(cfg: DictConfig) -> dict:
    """Trainer arguments IMIL needs: a fresh train loader each epoch, so workers see new edits."""
    return {"reload_dataloaders_every_n_epochs": 1} if is_enabled(cfg) else {}


def run_tags(cfg: DictConfig) -> list[str]:
    return ["imil"] if is_enabled(cfg) else []


def summary_fields(cfg: DictConfig, run_dir: str | Path, n_train: int) -> dict:
    """The rounds, edit counts and edited shares for ``summary.json`` (empty when IMIL is off)."""
    path = Path(run_dir) / "imil" / "edits.json"
    if not is_enabled(cfg) or not path.is_file():
        return {}
    edits = json.loads(path.read_text())
    shares = edited_shares(edits["n_edited"], edits["n_clinician"], n_train)
    return {"imil_rounds": [{k: v for k, v in r.items() if k != "selected"} for r in edits["rounds"]],
            "imil_edited": edits["n_edited"], "imil_clinician_edits": edits["n_clinician"],
            **{f"imil_{key}": value for key, value in shares.items()}}
