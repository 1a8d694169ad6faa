"""A learning curve from a matrix whose rows are named ``METHOD, N images`` (or ``METHOD, all
images``), e.g. ``kermany_learning_curve`` (issue #31): per training-set size, each method's test
balanced accuracy (mean ± std over seeds) and its paired difference to the baseline at that size
(the sign-flip test over seeds), then whether that difference grows as the data shrinks (per seed,
the slope of the difference against log2 of the training images, tested over seeds), as tables
(``MATRIX_curve.md``) and a figure (``MATRIX_curve.png``). ``python -m benchmarks.results`` writes
them when such a matrix's records exist."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hkd.atomic import atomic_write_text
from hkd.reporting.compare import (
    aggregate,
    difference_summary,
    paired_differences,
    paired_table,
    paired_values,
)

ROW = re.compile(r"^(?P<method>.+), (?P<size>\d+|all) images$")
METRIC = "test.balanced_accuracy"
REFERENCE = "baseline"


def curve_rows(records: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """{size: {method: records}} in the order the sizes grow ("all" last); empty unless every row
    is named ``METHOD, N images``."""
    found: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        match = ROW.match(record["name"])
        if match is None:
            return {}
        found.setdefault(match["size"], {}).setdefault(match["method"], []).append(record)
    return dict(sorted(found.items(), key=lambda item: float("inf") if item[0] == "all" else int(item[0])))


def named_runs(methods: dict[str, list[dict]]) -> list[dict]:
    """One size's records, each named by its method (for grouping and pairing)."""
    return [dict(record, name=method) for method, records in methods.items() for record in records]


def training_images(records: list[dict]) -> float:
    """The mean number of training images the runs of one row had (their ``splits`` record)."""
    counts = [r["splits"]["train"]["images"] for r in records if r.get("splits")]
    return float(np.mean(counts)) if counts else float("nan")


def size_images(methods: dict[str, list[dict]]) -> float:
    """The mean number of training images of one size's runs, every method's."""
    return training_images([record for records in methods.values() for record in records])


def paired_at(methods: dict[str, list[dict]], metric: str) -> dict[str, dict]:
    """One size's methods against its baseline, paired by seed (none without a baseline)."""
    return paired_differences(named_runs(methods), REFERENCE, metric=metric) if REFERENCE in methods else {}


def curve_table(curve: dict[str, dict[str, list[dict]]], metric: str = METRIC) -> str:
    """Markdown: one line per size and method, with the paired difference to the baseline."""
    lines = [f"| training images | method | n | {metric.split('.', 1)[1]} | Δ vs {REFERENCE} | better in "
             "| p (paired sign-flip) |", "|---|---|---|---|---|---|---|"]
    for size, methods in curve.items():
        table = aggregate(named_runs(methods), "name")
        paired = paired_at(methods, metric)
        images = size_images(methods)
        for method in methods:
            mean, std, n = table[method][metric]
            row = paired.get(method)
            difference = (f"{100 * row['mean']:+.1f} ± {100 * row['std']:.1f} | {row['wins']}/{row['n']} | "
                          f"{row['p']:.3f}") if row else "– | – | –"
            lines.append(f"| {size} ({images:.0f}) | {method} | {n} | {100 * mean:.1f} ± {100 * std:.1f} | "
                         f"{difference} |")
    return "\n".join(lines)


def gain_per_halving(curve: dict[str, dict[str, list[dict]]], metric: str = METRIC) -> dict[str, dict]:
    """{method: {mean, std, n, wins, p, ci}} of how much a method's paired difference to the baseline
    grows each time the training set halves: per seed, minus the least-squares slope of the
    difference against log2(training images), over the seeds that have the method and the baseline
    at every size; ``wins``: the seeds whose gain grows as the data shrinks."""
    if len(curve) < 2:
        return {}
    sizes = {size: np.log2(size_images(methods)) for size, methods in curve.items()}
    differences: dict[str, dict[tuple, dict[str, float]]] = {}  # method -> seed -> size -> Δ
    for size, methods in curve.items():
        values = paired_values(named_runs(methods), "name", metric)
        reference = values.get(REFERENCE, {})
        for method, by_seed in values.items():
            if method == REFERENCE:
                continue
            for seed in sorted(set(by_seed) & set(reference), key=str):  # one order in every process
                at_seed = differences.setdefault(method, {}).setdefault(seed, {})
                at_seed[size] = by_seed[seed] - reference[seed]
    rows = {}
    for method, by_seed in differences.items():
        slopes = [-float(np.polyfit([sizes[s] for s in at], list(at.values()), 1)[0])
                  for at in by_seed.values() if len(at) == len(curve)]
        if slopes:
            rows[method] = difference_summary(slopes)
    return rows


def trend_table(curve: dict[str, dict[str, list[dict]]], metric: str = METRIC) -> str:
    """Markdown: per method, the gain over the baseline each halving of the training set adds
    (``better in``: the seeds whose gain grows as the data shrinks)."""
    return paired_table(gain_per_halving(curve, metric), REFERENCE,
                        metric=f"{metric} added per halving of the training set")


def curve_figure(curve: dict[str, dict[str, list[dict]]], path: Path, metric: str = METRIC) -> None:
    """Against the training images (log scale), one line per method: the mean ± std of ``metric``
    (left) and the paired difference to the baseline with its bootstrap 95 % interval (right)."""
    import matplotlib.pyplot as plt

    from hkd.reporting.figures import save_figure  # importing it selects the Agg backend

    figure, (levels, gains) = plt.subplots(1, 2, figsize=(10, 3.8))
    key = metric.split(".", 1)[1]
    methods = list(dict.fromkeys(method for methods_at in curve.values() for method in methods_at))
    paired = {size: paired_at(methods_at, metric) for size, methods_at in curve.items()}
    for index, method in enumerate(methods):
        style = {"marker": "o", "capsize": 3, "label": method, "color": f"C{index}"}
        shift = 1.04 ** (index - (len(methods) - 1) / 2)  # side by side, so the error bars do not overlap
        sizes, means, stds, gain_sizes, gain, low, high = [], [], [], [], [], [], []
        for size, methods_at in curve.items():
            if method not in methods_at:
                continue
            values = [record["test"][key] for record in methods_at[method]]
            sizes.append(shift * training_images(methods_at[method]))
            means.append(100 * float(np.mean(values)))
            stds.append(100 * float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
            difference = paired[size].get(method)
            if difference:
                gain_sizes.append(sizes[-1])
                gain.append(100 * difference["mean"])
                low.append(gain[-1] - 100 * difference["ci"][0])
                high.append(100 * difference["ci"][1] - gain[-1])
        levels.errorbar(sizes, means, yerr=stds, **style)
        if gain:
            gains.errorbar(gain_sizes, gain, yerr=[low, high], **style)
    gains.axhline(0, color="grey", linewidth=0.8)
    ticks = [size_images(methods_at) for methods_at in curve.values()]
    labels = (f"{key} (%), mean ± std", f"Δ {key} vs {REFERENCE} (points, 95 % CI)")
    for axis, label in zip((levels, gains), labels):
        axis.set_xscale("log")
        axis.set_xticks(ticks, [f"{tick:.0f}" for tick in ticks])
        axis.minorticks_off()
        axis.set_xlabel("training images")
        axis.set_ylabel(label)
        axis.legend(fontsize=7)
    save_figure(figure, path)


def write_curve(records: list[dict], records_file: Path, provenance: str = "") -> Path | None:
    """``MATRIX_curve.md`` (``provenance`` under its table) and ``.png`` beside the records, when
    the matrix is a learning curve."""
    curve = curve_rows(records)
    if not curve:
        return None
    stem = records_file.with_name(f"{records_file.stem}_curve")
    curve_figure(curve, stem.with_suffix(".png"))
    footer = f"\n\n<sub>{provenance}</sub>" if provenance else ""
    tables = f"{curve_table(curve)}\n\n{trend_table(curve)}"
    return atomic_write_text(stem.with_suffix(".md"), tables + footer + "\n")
