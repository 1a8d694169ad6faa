"""Classification metrics from per-sample probabilities, and bootstrap confidence intervals.

Macro averages run over the classes present in the labels, so a test set with fewer classes than
the model (external validation) is scored on what it holds; with every class present they equal
the torchmetrics values a run logs (accuracy, macro recall, macro F1, one-vs-rest macro AUROC)."""

from __future__ import annotations

import numpy as np


def binary_auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting half; NaN without both."""
    pos, neg = np.sort(scores[positive]), np.sort(scores[~positive])
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (len(pos) * len(neg)))


def classification_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and macro AUROC of ``probabilities`` (N, K)."""
    predictions = probabilities.argmax(1)
    present = np.unique(labels)
    recalls, f1s, aurocs = [], [], []
    for c in present:
        truth, said = labels == c, predictions == c
        hits = float((truth & said).sum())
        recall = hits / truth.sum()
        precision = hits / said.sum() if said.any() else 0.0
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        aurocs.append(binary_auroc(probabilities[:, c], truth))
    valid = [a for a in aurocs if not np.isnan(a)]
    return {"accuracy": float((predictions == labels).mean()), "balanced_accuracy": float(np.mean(recalls)),
            "macro_f1": float(np.mean(f1s)), "auroc": float(np.mean(valid)) if valid else float("nan")}


def bootstrap_intervals(probabilities: np.ndarray, labels: np.ndarray,
                        per_sample: dict[str, np.ndarray] | None = None, n_resamples: int = 1000,
                        level: float = 0.95, seed: int = 0) -> dict[str, list[float]]:
    """Percentile bootstrap intervals ``{metric: [low, high]}`` of the classification metrics and of
    the means of ``per_sample`` values (NaN entries, e.g. images without regions, left out)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    draws: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        pick = rng.integers(0, n, n)
        for key, value in classification_scores(probabilities[pick], labels[pick]).items():
            draws.setdefault(key, []).append(value)
        for key, values in (per_sample or {}).items():
            chosen = values[pick]
            chosen = chosen[~np.isnan(chosen)]
            draws.setdefault(key, []).append(float(chosen.mean()) if len(chosen) else float("nan"))
    tail = 100 * (1 - level) / 2
    intervals = {}
    for key, values in draws.items():
        values = np.asarray(values)
        values = values[~np.isnan(values)]
        intervals[key] = [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))] \
            if len(values) else [float("nan"), float("nan")]
    return intervals
