"""Metrics from per-sample probabilities (equal to torchmetrics where both apply) and bootstrap
confidence intervals."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_f1_score,
    multiclass_recall,
)

from hkd.reporting.statistics import binary_auroc, bootstrap_intervals, classification_scores


def noisy_predictions(n: int, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probabilities, labels


def test_scores_equal_torchmetrics_when_every_class_is_present():
    probabilities, labels = noisy_predictions(300)
    p, y = torch.from_numpy(probabilities), torch.from_numpy(labels)
    scores = classification_scores(probabilities, labels)
    assert scores["accuracy"] == pytest.approx(float(multiclass_accuracy(p, y, 4, average="micro")))
    assert scores["balanced_accuracy"] == pytest.approx(float(multiclass_recall(p, y, 4, average="macro")))
    assert scores["macro_f1"] == pytest.approx(float(multiclass_f1_score(p, y, 4, average="macro")), abs=1e-6)
    assert scores["auroc"] == pytest.approx(float(multiclass_auroc(p, y, 4, average="macro")), abs=1e-4)


def test_absent_classes_are_left_out_of_the_macro_averages():
    probabilities = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.3, 0.6, 0.1]])
    labels = np.array([0, 1, 0, 1])  # class 2 never occurs (an external set with fewer classes)
    scores = classification_scores(probabilities, labels)
    assert scores["balanced_accuracy"] == 1.0 and scores["macro_f1"] == 1.0 and scores["auroc"] == 1.0
    assert binary_auroc(np.array([0.1, 0.5, 0.5, 0.9]), np.array([False, True, False, True])) == 0.875


def test_intervals_contain_the_estimate_and_shrink_with_more_samples():
    widths = {}
    for n in (60, 960):
        probabilities, labels = noisy_predictions(n, seed=n)
        mass = np.where(np.arange(n) % 3 == 0, np.nan, np.linspace(0.2, 0.6, n))  # some without regions
        intervals = bootstrap_intervals(probabilities, labels, {"relevance_mass": mass}, n_resamples=400)
        for key, value in {**classification_scores(probabilities, labels),
                           "relevance_mass": float(np.nanmean(mass))}.items():
            low, high = intervals[key]
            assert low <= value <= high, (n, key)
        widths[n] = {key: high - low for key, (low, high) in intervals.items()}
    assert all(widths[960][key] < widths[60][key] / 2 for key in widths[60])  # ~ 1/sqrt(n)
