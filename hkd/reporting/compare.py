"""Compare runs from their ``summary.json``: mean and spread per group, as a markdown table, and
paired differences against a reference group (runs paired by seed and fold)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

COLUMNS = (("test", "accuracy"), ("test", "balanced_accuracy"), ("test", "macro_f1"),
           ("test", "auroc"), ("explanations", "relevance_mass"), ("explanations", "pointing_game"))


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


def aggregate(summaries: list[dict], by: str = "name") -> dict[str, dict[str, tuple[float, float, int]]]:
    """{group: {"section.metric": (mean, std, n)}}; std is the sample std (0 for one run)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for summary in summaries:
        group = group_key(summary, by)
        for section, metric in COLUMNS:
            value = summary.get(section, {}).get(metric)
            if value is not None:
                values[group][f"{section}.{metric}"].append(float(value))
    table = {}
    for group, metrics in values.items():
        table[group] = {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                              len(v)) for key, v in metrics.items()}
    return table


def markdown_table(table: dict[str, dict[str, tuple[float, float, int]]], scale: float = 100.0) -> str:
    """Rows per group, mean ± std in percent; n = runs."""
    keys = [f"{s}.{m}" for s, m in COLUMNS]
    header = "| run | n | " + " | ".join(k.split(".", 1)[1] for k in keys) + " |"
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


def sign_flip_p_value(differences: list[float]) -> float:
    """Exact two-sided paired permutation test: the share of the 2^n sign flips whose mean is at
    least as far from 0 as the observed one (needs no normality; n up to ~16)."""
    observed = abs(np.mean(differences)) - 1e-12
    flips = list(itertools.product((1.0, -1.0), repeat=len(differences)))
    means = np.abs(np.array(flips) @ np.asarray(differences)) / len(differences)
    return float((means >= observed).mean())


def paired_differences(summaries: list[dict], reference: str, by: str = "name",
                       metric: str = "test.accuracy") -> dict[str, dict]:
    """{group: {mean, std, n, wins, p}} of ``group - reference`` over the runs both have."""
    section, name = metric.split(".", 1)
    values: dict[str, dict[tuple, float]] = defaultdict(dict)
    for summary in summaries:
        value = summary.get(section, {}).get(name)
        if value is not None:
            values[group_key(summary, by)][pair_key(summary)] = float(value)
    if reference not in values:
        raise ValueError(f"no runs of the reference group {reference!r} (groups: {sorted(values)})")
    rows = {}
    for group, runs in values.items():
        shared = sorted(set(runs) & set(values[reference]), key=str)
        if group == reference or not shared:
            continue
        diffs = [runs[key] - values[reference][key] for key in shared]
        rows[group] = {"mean": float(np.mean(diffs)), "n": len(diffs),
                       "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0,
                       "wins": sum(d > 0 for d in diffs),
                       "p": sign_flip_p_value(diffs) if len(diffs) <= 16 else float("nan")}
    return rows


def paired_table(rows: dict[str, dict], reference: str, metric: str = "test.accuracy",
                 scale: float = 100.0) -> str:
    """Markdown: mean ± std of the per-seed difference, wins out of n, the sign-flip p-value."""
    lines = [f"| run − {reference} | n | Δ {metric.split('.', 1)[1]} | better in | p (paired sign-flip) |",
             "|---|---|---|---|---|"]
    for group, row in rows.items():
        lines.append(f"| {group} | {row['n']} | {scale * row['mean']:+.1f} ± {scale * row['std']:.1f} "
                     f"| {row['wins']}/{row['n']} | {row['p']:.3f} |")
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
