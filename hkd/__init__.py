"""hkd: train medical image classifiers that use expert annotations (HKD, IMIL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from hkd.inference.preprocessing import Preprocessing
    from hkd.models.classifier import ClassifierModule


def load_model(run_dir: str | Path, device: str | None = None) -> tuple[ClassifierModule, Preprocessing]:
    """A run's best model (student only, no ``model.pretrained`` needed) and its preprocessing:
    ``model, preprocessing = hkd.load_model("runs/NAME/RUN_ID")``."""
    from hkd.inference.model import load_model as load

    return load(run_dir, device)
