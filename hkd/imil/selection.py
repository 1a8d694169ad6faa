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




def select_flips(idx: np.ndarray, drops: np.ndarray, flipped: np.ndarray, exclude: set[int],
                 limit: int) -> list[int]:
    """Samples whose decision leans on pixels outside their relevant region (beyond the paper):
    those the swap view flips first, then by how much the swap lowers the true class's
    probability (``drops``; NaN where the sample has no region, never chosen), excluding samples
    already edited or reviewed, at most ``limit``. Ties break by idx, so all ranks agree."""
    usable = ~np.isnan(drops) & (drops > 0) & ~np.isin(idx, list(exclude))
    candidates = np.flatnonzero(usable)
    order = np.lexsort((idx[candidates], -drops[candidates], -flipped[candidates].astype(np.int64)))
    return [int(i) for i in idx[candidates][order][:limit]]


def choose(mode: str, idx: np.ndarray, labels: np.ndarray, predictions: np.ndarray, losses: np.ndarray,
           drops: np.ndarray, flipped: np.ndarray, exclude: set[int], limit: int) -> list[int]:
    """A round's samples for the oracle by ``imil.mine``: the misprediction outliers (the paper),
    the swap's flips, or both (half the round's limit each, mispredictions first)."""
    if mode == "mispredicted":
        return select_outliers(idx, labels, predictions, losses, exclude, limit)
    if mode == "flips":
        return select_flips(idx, drops, flipped, exclude, limit)
    wrong = select_outliers(idx, labels, predictions, losses, exclude, limit - limit // 2)
    return wrong + select_flips(idx, drops, flipped, exclude | set(wrong), limit - len(wrong))
