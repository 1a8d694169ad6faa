"""Pure functions of IMIL's selection: identical on every rank, testable without processes."""

from __future__ import annotations

import math

import numpy as np


def deduplicate(idx: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop repeated ``idx`` (a DistributedSampler pads its shards with duplicates); sorted by idx."""
    unique, first = np.unique(idx, return_index=True)
    return (unique, *(column[first] for column in columns))


def total_budget(budget: float, n_train: int) -> int:
    """How many training samples may be edited over the whole run (0 < budget <= 1: a share)."""
    if budget <= 0:
        return 0
    return min(n_train, max(1, math.floor(budget * n_train + 1e-9)))


def round_limit(total: int, used: int, rounds: int | None) -> int:
    """This round's cap: the rest of the budget, or an even share of it over ``rounds``."""
    remaining = max(0, total - used)
    if rounds:
        return min(remaining, math.ceil(total / rounds))
    return remaining


def select_outliers(idx: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    losses: np.ndarray, exclude: set[int], limit: int) -> list[int]:
    """The misprediction outliers: wrong predictions, highest loss first, excluding samples
    already edited or reviewed, at most ``limit``. Ties break by idx, so all ranks agree."""
    wrong = (predictions != labels) & ~np.isin(idx, list(exclude))
    candidates = np.flatnonzero(wrong)
    order = np.lexsort((idx[candidates], -losses[candidates]))
    return [int(i) for i in idx[candidates][order][:limit]]
