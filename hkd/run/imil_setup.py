"""IMIL in a run, from the ``imil.*`` keys: whether it is on, the callback, the Trainer options it
needs, the run's tags and its fields in ``summary.json``."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from hkd.imil.edits import edited_shares
from hkd.run.build import build_imil_callback


def is_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.imil.enabled)


def callbacks(cfg: DictConfig, run_dir: str | Path) -> list[Callback]:
    """The IMIL callback of a run, or nothing when IMIL is off."""
    return [build_imil_callback(cfg, run_dir)] if is_enabled(cfg) else []


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
