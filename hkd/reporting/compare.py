"""Compare runs from their ``summary.json``: mean and spread per group, as a markdown table, and
paired differences against a reference group (runs paired by seed and fold)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = (("test", "accuracy"), ("test", "balanced_accuracy"), ("test", "macro_f1"),
           ("test", "auroc"), ("explanations", "relevance_mass"), ("explanations", "pointing_game"),
           ("test", "worst_class_accuracy"), ("test_last_epoch", "balanced_accuracy"),
           ("test_last_epoch", "worst_class_accuracy"))
# a column no run has (summaries made before it existed) is left out of the table
COLUMN_NAMES = {"test_last_epoch": "{}, last epoch"}
# the best checkpoint's validation metrics: what the papers' train / valid protocol reports
VAL_COLUMNS = (("val", "accuracy"), ("val", "balanced_accuracy"), ("val", "macro_f1"), ("val", "auroc"))


def find_summaries(paths: list[str | Path]) -> list[dict]:
    """Every ``summary.json`` at or below the given run directories (teacher sub-runs excluded)."""
    summaries = []
    for path in map(Path, paths):
        files = [path] if path.is_file() else sorted(path.rglob("summary.json"))
        for file in files:
            if file.parent.name == "teacher":
                continue
            summary = json.loads(file.read_text())
            summary.setdefault("run_dir", str(file.parent))
            summaries.append(summary)
    return summaries


def group_key(summary: dict, by: str) -> str:
    return str(summary.get(by, "?"))


def aggregate(summaries: list[dict], by: str = "name",
              columns: tuple = COLUMNS) -> dict[str, dict[str, tuple[float, float, int]]]:
    """{group: {"section.metric": (mean, std, n)}}; std is the sample std (0 for one run)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for summary in summaries:
        group = group_key(summary, by)
        for section, metric in columns:
            value = (summary.get(section) or {}).get(metric)
            if value is not None:
                values[group][f"{section}.{metric}"].append(float(value))
    table = {}
    for group, metrics in values.items():
        table[group] = {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                              len(v)) for key, v in metrics.items()}
    return table


def markdown_table(table: dict[str, dict[str, tuple[float, float, int]]], scale: float = 100.0,
                   columns: tuple = COLUMNS) -> str:
    """Rows per group, mean ± std in percent; n = runs."""
    keys = [key for key in (f"{s}.{m}" for s, m in columns) if any(key in row for row in table.values())]
    names = [COLUMN_NAMES.get(k.split(".")[0], "{}").format(k.split(".", 1)[1]) if columns is COLUMNS else k
             for k in keys]
    header = "| run | n | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(keys) + 2)]
    for group in table:
        cells = []
        n = max((v[2] for v in table[group].values()), default=0)
        for key in keys:
            if key in table[group]:
                mean, std, _ = table[group][key]
                cells.append(f"{scale * mean:.1f} ± {scale * std:.1f}")
            else:
                cells.append("–")
        lines.append(f"| {group} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pair_key(summary: dict) -> tuple:
    """Runs with the same seed (and fold) share data, split and initialisation: they pair."""
    return summary.get("seed"), summary.get("fold")


EXACT_UP_TO = 16  # pairs: all 2^n sign flips; beyond, a seeded Monte Carlo sample of them
MONTE_CARLO_FLIPS = 100_000


def sign_flip_p_value(differences: list[float], seed: int = 0) -> float:
    """Two-sided paired permutation test: the share of sign flips whose mean is at least as far
    from 0 as the observed one (no normality assumed). Exact for up to ``EXACT_UP_TO`` pairs; for
    more, ``MONTE_CARLO_FLIPS`` random flips (seeded) with the observed one counted in, so p > 0."""
    values = np.asarray(differences, dtype=float)
    observed = abs(values.mean()) - 1e-12
    if len(values) <= EXACT_UP_TO:
        flips = np.array(list(itertools.product((1.0, -1.0), repeat=len(values))))
        return float((np.abs(flips @ values) / len(values) >= observed).mean())
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(MONTE_CARLO_FLIPS, len(values)))
    extreme = int((np.abs(signs @ values) / len(values) >= observed).sum())
    return (extreme + 1) / (MONTE_CARLO_FLIPS + 1)


def mean_interval(differences: list[float], n_resamples: int = 10_000, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95 % interval of the mean of ``differences``."""
    values = np.asarray(differences, dtype=float)
    means = values[np.random.default_rng(seed).integers(0, len(values), (n_resamples, len(values)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def paired_values(summaries: list[dict], by: str, metric: str) -> dict[str, dict[tuple, float]]:
    """{group: {(seed, fold): value}} of ``metric`` ("section.name"), for pairing runs."""
    section, name = metric.split(".", 1)
    values: dict[str, dict[tuple, float]] = defaultdict(dict)
    for summary in summaries:
        value = (summary.get(section) or {}).get(name)
        if value is not None:
            values[group_key(summary, by)][pair_key(summary)] = float(value)
    return values


def paired_differences(summaries: list[dict], reference: str, by: str = "name",
                       metric: str = "test.accuracy") -> dict[str, dict]:
    """{group: {mean, std, n, wins, p, ci}} of ``group - reference`` over the runs both have (``ci``:
    a bootstrap 95 % interval of the mean difference)."""
    values = paired_values(summaries, by, metric)
    if reference not in values:
        raise ValueError(f"no runs of the reference group {reference!r} (groups: {sorted(values)})")
    rows = {}
    for group, runs in values.items():
        shared = sorted(set(runs) & set(values[reference]), key=str)
        if group == reference or not shared:
            continue
        rows[group] = difference_summary([runs[key] - values[reference][key] for key in shared])
    return rows


def difference_summary(differences: list[float]) -> dict:
    """{mean, std, n, wins, p, ci} of paired differences (``wins``: how many are above 0)."""
    return {"mean": float(np.mean(differences)), "n": len(differences),
            "std": float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0,
            "wins": sum(d > 0 for d in differences),
            "p": sign_flip_p_value(differences), "ci": mean_interval(differences)}


def paired_table(rows: dict[str, dict], reference: str, metric: str = "test.accuracy",
                 scale: float = 100.0) -> str:
    """Markdown: mean ± std of the per-seed difference, wins out of n, the sign-flip p-value and a
    bootstrap 95 % interval of the mean difference."""
    lines = [f"| run − {reference} | n | Δ {metric.split('.', 1)[1]} | better in | p (paired sign-flip) "
             "| 95 % CI of Δ |", "|---|---|---|---|---|---|"]
    for group, row in rows.items():
        low, high = (scale * value for value in row["ci"])
        lines.append(f"| {group} | {row['n']} | {scale * row['mean']:+.1f} ± {scale * row['std']:.1f} "
                     f"| {row['wins']}/{row['n']} | {row['p']:.3f} | {low:+.1f} to {high:+.1f} |")
    return "\n".join(lines)


def plot(table: dict[str, dict[str, tuple[float, float, int]]], path: Path,
         metrics: tuple[str, ...] = ("test.balanced_accuracy", "explanations.relevance_mass")) -> None:
    """A bar chart (mean with std error bars) per metric."""
    import matplotlib.pyplot as plt

    from hkd.reporting.figures import save_figure  # importing it selects the Agg backend

    groups = list(table)
    figure, axes = plt.subplots(1, len(metrics), figsize=(4 + 0.6 * len(groups), 3.5), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        means = [table[g].get(metric, (np.nan, 0, 0))[0] for g in groups]
        stds = [table[g].get(metric, (0, 0, 0))[1] for g in groups]
        axis.bar(range(len(groups)), means, yerr=stds, capsize=3, color="tab:blue")
        axis.set_xticks(range(len(groups)), groups, rotation=45, ha="right")
        axis.set_title(metric)
        axis.set_ylim(0, 1)
    save_figure(figure, path)
