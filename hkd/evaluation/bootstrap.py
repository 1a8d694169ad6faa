"""Bootstrap resampling for confidence intervals: images drawn with replacement, or whole patients
where patient ids exist (every image of a drawn patient comes along, so several images of one
patient do not pass for independent evidence)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

LEVEL = 0.95


def resamples(patients: list[str] | None, n_images: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Index arrays, one per resample: patients (clusters) drawn with replacement when given and
    fewer than the images, else images."""
    rng = np.random.default_rng(seed)
    if patients is not None and len(set(patients)) < n_images:
        ids, groups = np.unique(np.asarray(patients), return_inverse=True)
        members = [np.flatnonzero(groups == g) for g in range(len(ids))]
        for _ in range(n_resamples):
            yield np.concatenate([members[g] for g in rng.integers(0, len(ids), len(ids))])
    else:
        for _ in range(n_resamples):
            yield rng.integers(0, n_images, n_images)


def percentile_interval(draws: list[float] | np.ndarray) -> list[float]:
    """The central 95 % of the finite draws ([NaN, NaN] without any)."""
    values = np.asarray(draws, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return [float("nan"), float("nan")]
    tail = 100 * (1 - LEVEL) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def intervals(statistic: Callable[[np.ndarray], dict[str, np.ndarray | float]], patients: list[str] | None,
              n_images: int, n_resamples: int, seed: int) -> dict[str, list]:
    """Percentile intervals of every value ``statistic(indices)`` returns (a scalar, or an array
    per class: then one interval per entry)."""
    draws: dict[str, list] = {}
    for pick in resamples(patients, n_images, n_resamples, seed):
        for key, value in statistic(pick).items():
            draws.setdefault(key, []).append(np.atleast_1d(np.asarray(value, dtype=np.float64)))
    out = {}
    for key, values in draws.items():
        stacked = np.stack(values)  # (resamples, entries)
        entries = [percentile_interval(stacked[:, e]) for e in range(stacked.shape[1])]
        out[key] = entries if stacked.shape[1] > 1 else entries[0]
    return out
