"""The report's numbers against scikit-learn / scipy on fixed predictions (to 1e-6), binary and
multi-class, ties included; temperature scaling; the patient bootstrap; McNemar and the paired
comparison's refusal of runs on different images."""

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from hkd.errors import ConfigError, InputError
from hkd.evaluation import metrics
from hkd.evaluation.bootstrap import resamples
from hkd.evaluation.operating_points import operating_thresholds, threshold_for_sensitivity
from hkd.evaluation.paired import mcnemar, paired_comparison
from hkd.evaluation.predictions import Predictions
from hkd.evaluation.temperature import fit_temperature, nll, softmax


def fixed_predictions(k: int, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
    probabilities = np.round(softmax(logits), 2)  # rounded: ties in every ranking
    probabilities /= probabilities.sum(1, keepdims=True)
    return labels, logits, probabilities


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("thresholds", [None, {0: 0.3}])
def test_per_class_metrics_equal_scikit_learn(k, thresholds):
    labels, _, probabilities = fixed_predictions(k)
    found = metrics.per_class(probabilities, labels, thresholds)
    called = metrics.decisions(probabilities, thresholds)
    for c in range(k):
        truth, said = labels == c, called[:, c]
        tn, fp, fn, tp = confusion_matrix(truth, said).ravel()
        assert found["sensitivity"][c] == pytest.approx(recall_score(truth, said), abs=1e-6)
        assert found["ppv"][c] == pytest.approx(precision_score(truth, said), abs=1e-6)
        assert found["f1"][c] == pytest.approx(f1_score(truth, said), abs=1e-6)
        assert found["specificity"][c] == pytest.approx(tn / (tn + fp), abs=1e-6)
        assert found["npv"][c] == pytest.approx(tn / (tn + fn), abs=1e-6)
        assert found["support"][c] == truth.sum()
    if thresholds:  # the operating point moves class 0's calls, not the others'
        assert (called[:, 0] == (probabilities[:, 0] >= 0.3)).all()
        assert (called[:, 1] == (probabilities.argmax(1) == 1)).all()


@pytest.mark.parametrize("k", [2, 4])
def test_areas_equal_scikit_learn_with_ties(k):
    labels, _, probabilities = fixed_predictions(k)
    found = metrics.aucs(probabilities, labels)
    truth = np.eye(k)[labels]
    for c in range(k):
        assert found["auroc"][c] == pytest.approx(roc_auc_score(truth[:, c], probabilities[:, c]), abs=1e-6)
        assert found["average_precision"][c] == pytest.approx(
            average_precision_score(truth[:, c], probabilities[:, c]), abs=1e-6)
    macro = roc_auc_score(labels, probabilities, multi_class="ovr") if k > 2 else \
        np.mean([roc_auc_score(truth[:, c], probabilities[:, c]) for c in range(k)])
    assert found["auroc_macro"] == pytest.approx(macro, abs=1e-6)
    micro = roc_auc_score(truth.ravel(), probabilities.ravel())
    assert found["auroc_micro"] == pytest.approx(micro, abs=1e-6)
    assert found["average_precision_micro"] == pytest.approx(
        average_precision_score(truth.ravel(), probabilities.ravel()), abs=1e-6)


@pytest.mark.parametrize("k", [2, 3])
def test_calibration_equals_references(k):
    labels, _, probabilities = fixed_predictions(k)
    found = metrics.calibration(probabilities, labels)
    assert found["nll"] == pytest.approx(log_loss(labels, probabilities), abs=1e-6)
    if k == 2:  # the multi-class Brier score counts both classes: twice the binary one
        assert found["brier"] == pytest.approx(2 * brier_score_loss(labels, probabilities[:, 1]), abs=1e-6)
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    bins = np.minimum((confidence * metrics.CALIBRATION_BINS).astype(int), metrics.CALIBRATION_BINS - 1)
    bins = np.where(np.isclose(confidence * metrics.CALIBRATION_BINS, bins), bins - 1, bins).clip(0)
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
              for b in np.unique(bins))  # bins (lower, upper], as torchmetrics draws them
    assert found["ece"] == pytest.approx(ece, abs=1e-6)


def test_temperature_scaling_minimises_the_validation_nll_and_keeps_every_call():
    labels, logits, _ = fixed_predictions(3, seed=1)
    overconfident = 4 * logits
    temperature = fit_temperature(overconfident, labels)
    grid = np.exp(np.linspace(-3, 3, 6001))
    best = grid[np.argmin([nll(overconfident, labels, t) for t in grid])]
    assert temperature == pytest.approx(best, rel=2e-3) and temperature > 1  # it was overconfident
    assert nll(overconfident, labels, temperature) < nll(overconfident, labels)
    assert (softmax(overconfident, temperature).argmax(1) == overconfident.argmax(1)).all()
    before = metrics.calibration(softmax(overconfident), labels)["ece"]
    assert metrics.calibration(softmax(overconfident, temperature), labels)["ece"] < before


def test_the_bootstrap_draws_whole_patients():
    patients = ["a", "a", "a", "b", "c", "c"]
    for pick in resamples(patients, 6, 50, seed=0):
        drawn = [patients[i] for i in pick]
        assert all(drawn.count(p) % patients.count(p) == 0 for p in set(drawn))  # all their images, k times
    assert all(len(pick) == 6 for pick in resamples(None, 6, 5, seed=0))


def test_a_target_sensitivity_is_met_on_validation_at_the_highest_such_threshold():
    labels, _, probabilities = fixed_predictions(3, seed=2)
    threshold = threshold_for_sensitivity(probabilities[:, 1], labels == 1, 0.9)
    reached = (probabilities[labels == 1, 1] >= threshold).mean()
    assert reached >= 0.9
    above = np.unique(probabilities[:, 1])
    above = above[above > threshold]
    assert (probabilities[labels == 1, 1] >= above.min()).mean() < 0.9  # the next threshold up misses it
    points = operating_thresholds(["a", "b", "c"], {}, {"b": 0.9}, probabilities, labels)
    assert points["b"]["threshold"] == threshold and points["b"]["validation_sensitivity"] == reached
    with pytest.raises(ConfigError, match="'d' is not a class of the model"):
        operating_thresholds(["a", "b", "c"], {"d": 0.5}, {}, None, None)
    with pytest.raises(ConfigError, match="chosen on the validation split"):
        operating_thresholds(["a", "b", "c"], {}, {"b": 0.9}, None, None)


def test_mcnemar_is_the_exact_binomial_test():
    a_right = np.array([True] * 10 + [False] * 2 + [True] * 30)
    b_right = np.array([False] * 10 + [True] * 2 + [True] * 30)
    found = mcnemar(a_right, b_right)
    assert (found["only_a_right"], found["only_b_right"]) == (10, 2)
    assert found["p"] == pytest.approx(2 * binom.cdf(2, 12, 0.5), abs=1e-9)  # 0.0386


def predictions(files: list[str], labels: np.ndarray, probabilities: np.ndarray) -> Predictions:
    return Predictions(path="x.csv", classes=["a", "b", "c"], files=files, patients=files, labels=labels,
                       probabilities=probabilities, logits=None)


def test_the_paired_comparison_aligns_images_and_refuses_different_ones():
    labels, _, p_a = fixed_predictions(3, n=120, seed=3)
    _, _, p_b = fixed_predictions(3, n=120, seed=4)
    files = [f"img{i}.png" for i in range(120)]
    order = np.random.default_rng(0).permutation(120)  # B lists the same images in another order
    a = predictions(files, labels, p_a)
    b = predictions([files[i] for i in order], labels[order], p_b[order])
    result = paired_comparison(a, b, n_resamples=200)
    assert result["accuracy"]["b"] == pytest.approx((p_b.argmax(1) == labels).mean())
    low, high = result["balanced_accuracy"]["ci"]
    assert low <= result["balanced_accuracy"]["difference"] <= high
    assert paired_comparison(a, a, n_resamples=50)["accuracy"]["p"] == 1.0
    with pytest.raises(InputError, match="same images"):
        paired_comparison(a, predictions(files[:-1] + ["other.png"], labels, p_b), n_resamples=10)
