"""``hkd compare RUN_A RUN_B --paired``: two models on the *same* test images. Accuracy by McNemar's
exact test (scipy's binomial test on the images only one model gets right); balanced accuracy and
macro AUROC by a paired bootstrap (both models scored on the same resampled patients), each
difference B − A with its 95 % interval and a two-sided p-value."""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from hkd.errors import InputError
from hkd.evaluation.bootstrap import percentile_interval, resamples
from hkd.evaluation.metrics import summary_scores
from hkd.evaluation.predictions import Predictions

BOOTSTRAP_METRICS = ("balanced_accuracy", "auroc")


def aligned(a: Predictions, b: Predictions) -> np.ndarray:
    """B's row of each of A's images; runs on different images (or labels, or classes) are refused."""
    if a.classes != b.classes:
        raise InputError(f"{a.path} and {b.path} have different classes ({a.classes} vs {b.classes})")
    position = {file: n for n, file in enumerate(b.files)}
    only_a, only_b = set(a.files) - set(position), set(position) - set(a.files)
    if only_a or only_b or len(a.files) != len(b.files):
        raise InputError(f"--paired needs both runs tested on the same images: {len(only_a)} of {a.path}'s "
                         f"are not in {b.path} and {len(only_b)} the other way (e.g. "
                         f"{sorted(only_a or only_b)[:1]}); compare runs of the same test split")
    order = np.array([position[file] for file in a.files])
    if not np.array_equal(a.labels, b.labels[order]):
        raise InputError(f"{a.path} and {b.path} give the same images different labels")
    return order


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> dict:
    """The exact McNemar test: of the images exactly one model gets right, is either side more
    likely than chance?"""
    only_a, only_b = int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a_right": only_a, "only_b_right": only_b, "p": float(p)}


def paired_comparison(a: Predictions, b: Predictions, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Differences B − A on the same images: accuracy (McNemar), balanced accuracy and macro
    AUROC (paired bootstrap over patients)."""
    order = aligned(a, b)
    b_probabilities = b.probabilities[order]
    labels = a.labels
    a_right, b_right = a.probabilities.argmax(1) == labels, b_probabilities.argmax(1) == labels
    result = {"images": len(labels), "patients": len(set(a.patients)),
              "accuracy": {"a": float(a_right.mean()), "b": float(b_right.mean()),
                           "difference": float(b_right.mean() - a_right.mean()), **mcnemar(a_right, b_right)}}
    score_a, score_b = summary_scores(a.probabilities, labels), summary_scores(b_probabilities, labels)
    draws: dict[str, list[float]] = {name: [] for name in BOOTSTRAP_METRICS}
    for pick in resamples(a.patients, len(labels), n_resamples, seed):
        on_a, on_b = summary_scores(a.probabilities[pick], labels[pick]), \
            summary_scores(b_probabilities[pick], labels[pick])
        for name in BOOTSTRAP_METRICS:
            draws[name].append(on_b[name] - on_a[name])
    for name in BOOTSTRAP_METRICS:
        values = np.asarray(draws[name])
        values = values[np.isfinite(values)]
        tail = min(float((values <= 0).mean()), float((values >= 0).mean())) if len(values) else 0.5
        p = min(1.0, 2 * tail)
        result[name] = {"a": score_a[name], "b": score_b[name], "difference": score_b[name] - score_a[name],
                        "ci": percentile_interval(values), "p": p}
    return result


def paired_table(result: dict, name_a: str, name_b: str) -> str:
    """The comparison as markdown."""
    lines = [f"Paired on {result['images']} test images of {result['patients']} patients: B = {name_b}, "
             f"A = {name_a}.", "", "| metric | A | B | B − A | 95 % CI | p | test |",
             "|---|---|---|---|---|---|---|"]
    accuracy = result["accuracy"]
    lines.append(f"| accuracy | {100 * accuracy['a']:.1f} | {100 * accuracy['b']:.1f} | "
                 f"{100 * accuracy['difference']:+.1f} | – | {accuracy['p']:.4f} | McNemar exact "
                 f"({accuracy['only_a_right']} only A right, {accuracy['only_b_right']} only B right) |")
    for name in BOOTSTRAP_METRICS:
        row = result[name]
        low, high = row["ci"]
        lines.append(f"| {name.replace('_', ' ')} | {100 * row['a']:.1f} | {100 * row['b']:.1f} | "
                     f"{100 * row['difference']:+.1f} | {100 * low:+.1f} to {100 * high:+.1f} | "
                     f"{row['p']:.4f} | paired bootstrap |")
    return "\n".join(lines) + "\n"
