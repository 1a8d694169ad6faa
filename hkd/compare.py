"""Compare runs from their ``summary.json``: mean and spread per group, as a markdown table."""

from __future__ import annotations

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


def plot(table: dict[str, dict[str, tuple[float, float, int]]], path: Path,
         metrics: tuple[str, ...] = ("test.balanced_accuracy", "explanations.relevance_mass")) -> None:
    """A bar chart (mean with std error bars) per metric."""
    from hkd.records_io import plt, save_figure

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
