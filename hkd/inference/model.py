"""Load a run's model on its own: the best checkpoint's student, without the training method (an
HKD teacher stays behind) and without ``model.pretrained`` (every weight is in the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import OmegaConf

from hkd.errors import InputError
from hkd.inference.preprocessing import Preprocessing
from hkd.models.classifier import ClassifierModule
from hkd.run.calibration import saved_temperature
from hkd.run.checkpoints import load_classifier


def best_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint ``summary.json`` names, found in the run directory even if it was moved."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{run_dir}: no summary.json — not a finished run directory (an IMIL round "
                         "waiting for review finishes with resume=)")
    recorded = Path(json.loads(summary_path.read_text())["best_checkpoint"] or "")
    for candidate in (recorded, run_dir / "checkpoints" / recorded.name):
        if candidate.is_file():
            return candidate
    raise InputError(f"{run_dir}: its best checkpoint {recorded.name} is missing from "
                     f"{run_dir / 'checkpoints'}")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_model(run_dir: str | Path, device: str | torch.device | None = None,
               ) -> tuple[ClassifierModule, Preprocessing]:
    """A run's best model (the student only, with its temperature where the run was calibrated)
    and its preprocessing, in one call."""
    module = load_classifier(best_checkpoint(run_dir), device or default_device(), with_method=False)
    module.temperature.fill_(saved_temperature(run_dir))
    return module, Preprocessing.from_config(OmegaConf.create(module.run_config), module.classes)
