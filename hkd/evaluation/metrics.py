"""The numbers a radiology AI paper reports, from per-image probabilities (scikit-learn and
torchmetrics compute the curves and the calibration errors):

- per class, one-vs-rest at an operating point: sensitivity, specificity, PPV, NPV, F1, support;
- ROC and PR curves per class with their AUCs, macro and micro;
- calibration: expected calibration error (top-label, and class-wise), negative log-likelihood,
  Brier score.

The two areas a bootstrap recomputes thousands of times (AUROC, average precision) are rank
formulas here: scikit-learn's per-call input checks (1–4 ms) times 1,000 resamples times classes
and subgroups made a report take minutes. Both equal scikit-learn's ``roc_auc_score`` and
``average_precision_score`` to 1e-12 (``tests/unit/evaluation``), ties included."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import log_loss, precision_recall_curve, roc_curve
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

CALIBRATION_BINS = 15  # equal-width confidence bins of the ECE and the reliability diagram


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=int)[labels]


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting half (= ``roc_auc_score``)."""
    pos, neg = np.sort(scores[positive]), np.sort(scores[~positive])
    below = np.searchsorted(neg, pos, side="left")
    equal = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (len(pos) * len(neg)))


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Σ (R_n − R_{n−1}) P_n over the distinct thresholds (= ``average_precision_score``)."""
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positive[order].astype(float)
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last index of each distinct score
    true_positives = np.cumsum(hits)[ends]
    precision = true_positives / (ends + 1)
    recall = true_positives / hits.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def decisions(probabilities: np.ndarray, thresholds: dict[int, float] | None = None) -> np.ndarray:
    """(N, K) booleans: image n called class k. Without a threshold for k, the most probable class
    is the call; with one, ``p_k >= threshold`` (one-vs-rest, the operating point)."""
    k = probabilities.shape[1]
    called = one_hot(probabilities.argmax(1), k).astype(bool)
    for c, threshold in (thresholds or {}).items():
        called[:, c] = probabilities[:, c] >= threshold
    return called


def per_class(probabilities: np.ndarray, labels: np.ndarray,
              thresholds: dict[int, float] | None = None) -> dict[str, np.ndarray]:
    """Sensitivity, specificity, PPV, NPV, F1 and support per class (arrays of length K; NaN where
    undefined, e.g. no positive call for PPV)."""
    called = decisions(probabilities, thresholds)
    truth = one_hot(labels, probabilities.shape[1]).astype(bool)
    tp, fp = (called & truth).sum(0), (called & ~truth).sum(0)  # the one-vs-rest confusion matrices
    fn, tn = (~called & truth).sum(0), (~called & ~truth).sum(0)
    ratios = {"sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp), "ppv": (tp, tp + fp),
              "npv": (tn, tn + fn), "f1": (2 * tp, 2 * tp + fp + fn)}
    out = {name: np.where(den > 0, num / np.maximum(den, 1), np.nan) for name, (num, den) in ratios.items()}
    return {**out, "support": (tp + fn).astype(float)}


def aucs(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray | float]:
    """One-vs-rest AUROC and average precision (the area under the PR curve) per class, and their
    macro (over the classes present) and micro averages."""
    k = probabilities.shape[1]
    truth = one_hot(labels, k)
    present = [c for c in range(k) if 0 < truth[:, c].sum() < len(labels)]
    roc, pr = np.full(k, np.nan), np.full(k, np.nan)
    for c in present:
        roc[c] = roc_auc(probabilities[:, c], truth[:, c] > 0)
        pr[c] = average_precision(probabilities[:, c], truth[:, c] > 0)
    if not present:
        return {"auroc": roc, "average_precision": pr, **dict.fromkeys(
            ("auroc_macro", "average_precision_macro", "auroc_micro", "average_precision_micro"), np.nan)}
    flat_truth, flat_scores = truth.ravel() > 0, probabilities.ravel()
    return {"auroc": roc, "average_precision": pr, "auroc_macro": float(np.nanmean(roc)),
            "average_precision_macro": float(np.nanmean(pr)), "auroc_micro": roc_auc(flat_scores, flat_truth),
            "average_precision_micro": average_precision(flat_scores, flat_truth)}


def curves(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    """Per class the ROC curve (false positive rate, true positive rate) and the PR curve (recall,
    precision), one-vs-rest, plus the micro-averaged ones (``None`` for a class absent or alone)."""
    k = probabilities.shape[1]
    truth = one_hot(labels, k)
    roc, pr = [], []
    for c in range(k):
        if 0 < truth[:, c].sum() < len(labels):
            fpr, tpr, _ = roc_curve(truth[:, c], probabilities[:, c])
            precision, recall, _ = precision_recall_curve(truth[:, c], probabilities[:, c])
            roc.append((fpr, tpr))
            pr.append((recall, precision))
        else:
            roc.append(None)
            pr.append(None)
    fpr, tpr, _ = roc_curve(truth.ravel(), probabilities.ravel())
    precision, recall, _ = precision_recall_curve(truth.ravel(), probabilities.ravel())
    return {"roc": roc, "pr": pr, "roc_micro": (fpr, tpr), "pr_micro": (recall, precision)}


def calibration(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-label ECE, class-wise ECE (the mean of each class's one-vs-rest ECE), NLL and the
    multi-class Brier score (mean over images of the squared distance to the one-hot truth)."""
    k = probabilities.shape[1]
    p, y = torch.from_numpy(probabilities).double(), torch.from_numpy(labels).long()
    ece = float(multiclass_calibration_error(p, y, num_classes=k, n_bins=CALIBRATION_BINS, norm="l1"))
    classwise = [float(binary_calibration_error(p[:, c].contiguous(), (y == c).long(),
                                                n_bins=CALIBRATION_BINS, norm="l1")) for c in range(k)]
    brier = float(((probabilities - one_hot(labels, k)) ** 2).sum(1).mean())
    nll = float(log_loss(labels, np.clip(probabilities, 1e-15, 1), labels=list(range(k))))
    return {"ece": ece, "classwise_ece": float(np.mean(classwise)), "nll": nll, "brier": brier}


def reliability(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The reliability diagram's bins (top-label confidence): mean confidence, accuracy and count."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, CALIBRATION_BINS - 1)
    count = np.bincount(bins, minlength=CALIBRATION_BINS)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(bins, confidence, CALIBRATION_BINS) / count
        accuracy = np.bincount(bins, correct.astype(float), CALIBRATION_BINS) / count
    return {"edges": edges, "confidence": mean_confidence, "accuracy": accuracy, "count": count}


def summary_scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy (the mean sensitivity over the classes present) and macro AUROC."""
    k = probabilities.shape[1]
    sensitivity = per_class(probabilities, labels)["sensitivity"]
    present = np.bincount(labels, minlength=k) > 0
    truth = one_hot(labels, k)
    separable = [c for c in range(k) if 0 < truth[:, c].sum() < len(labels)]
    return {"accuracy": float((probabilities.argmax(1) == labels).mean()),
            "balanced_accuracy": float(np.mean(sensitivity[present])),
            "auroc": float(np.mean([roc_auc(probabilities[:, c], truth[:, c] > 0) for c in separable]))
            if separable else np.nan}
