"""Operating points: where a class is called. ``--threshold CLASS=0.3`` fixes one; ``--target-sensitivity
CLASS=0.95`` chooses the highest threshold whose sensitivity on the *validation* split reaches the
target (the test split then reports what it gives, never chooses it)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from hkd.errors import ConfigError


def parse_assignments(values: list[str], option: str) -> dict[str, float]:
    """``["CLASS=0.3", ...]`` as ``{CLASS: 0.3}``; a bad entry is named."""
    parsed = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            parsed[name] = float(number)
        except ValueError:
            raise ConfigError(f"{option} {value}: write CLASS=NUMBER, e.g. covid19=0.5") from None
        if not 0 <= parsed[name] <= 1:
            raise ConfigError(f"{option} {value}: the number must lie in [0, 1]")
    return parsed


def threshold_for_sensitivity(scores: np.ndarray, positive: np.ndarray, target: float) -> float:
    """The highest threshold at which at least ``target`` of the positives score at or above it."""
    if not positive.any() or positive.all():
        raise ConfigError("a target sensitivity needs validation images of the class and of the others")
    _, tpr, thresholds = roc_curve(positive, scores)
    reached = np.flatnonzero(tpr >= target - 1e-12)
    return float(min(thresholds[reached[0]], 1.0))


def operating_thresholds(classes: list[str], thresholds: dict[str, float], targets: dict[str, float],
                         val_probabilities: np.ndarray | None,
                         val_labels: np.ndarray | None) -> dict[str, dict]:
    """Per class with an operating point: its threshold and how it was set (given, or chosen on
    validation for a target sensitivity, with the sensitivity reached there)."""
    for option, given in (("--threshold", thresholds), ("--target-sensitivity", targets)):
        unknown = [name for name in given if name not in classes]
        if unknown:
            raise ConfigError(f"{option} {unknown[0]}=...: '{unknown[0]}' is not a class of the model "
                              f"({', '.join(classes)})")
    points = {name: {"threshold": value, "set_by": "given"} for name, value in thresholds.items()}
    for name, target in targets.items():
        if val_probabilities is None:
            raise ConfigError(f"--target-sensitivity {name}={target} is chosen on the validation split, "
                              "and this run has no val_predictions.csv (runs made before hkd wrote it): "
                              "give --threshold instead")
        c = classes.index(name)
        positive = val_labels == c
        threshold = threshold_for_sensitivity(val_probabilities[:, c], positive, target)
        reached = float((val_probabilities[positive, c] >= threshold).mean())
        points[name] = {"threshold": threshold, "set_by": f"target sensitivity {target:g} on validation",
                        "validation_sensitivity": reached}
    return points
