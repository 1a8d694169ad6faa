"""A learning curve from a matrix whose rows are named ``METHOD, N images`` (or ``METHOD, all
images``), e.g. ``kermany_learning_curve`` (issue #31): per training-set size, each method's test
balanced accuracy (mean ± std over seeds) and its paired difference to the baseline at that size
(the sign-flip test over seeds), as a table (``MATRIX_curve.md``) and a figure
(``MATRIX_curve.png``). ``python -m benchmarks.results`` writes both when such a matrix's records
exist."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hkd.atomic import atomic_write_text
from hkd.reporting.compare import aggregate, paired_differences

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


def training_images(records: list[dict]) -> float:
    """The mean number of training images the runs of one row had (their ``splits`` record)."""
    counts = [r["splits"]["train"]["images"] for r in records if r.get("splits")]
    return float(np.mean(counts)) if counts else float("nan")


def curve_table(curve: dict[str, dict[str, list[dict]]], metric: str = METRIC) -> str:
    """Markdown: one line per size and method, with the paired difference to the baseline."""
    lines = [f"| training images | method | n | {metric.split('.', 1)[1]} | Δ vs {REFERENCE} | better in "
             "| p (paired sign-flip) |", "|---|---|---|---|---|---|---|"]
    for size, methods in curve.items():
        runs = [dict(record, name=method) for method, records in methods.items() for record in records]
        table = aggregate(runs, "name")
        paired = paired_differences(runs, REFERENCE, metric=metric) if REFERENCE in methods else {}
        images = training_images([r for records in methods.values() for r in records])
        for method in methods:
            mean, std, n = table[method][metric]
            row = paired.get(method)
            difference = (f"{100 * row['mean']:+.1f} ± {100 * row['std']:.1f} | {row['wins']}/{row['n']} | "
                          f"{row['p']:.3f}") if row else "– | – | –"
            lines.append(f"| {size} ({images:.0f}) | {method} | {n} | {100 * mean:.1f} ± {100 * std:.1f} | "
                         f"{difference} |")
    return "\n".join(lines)


def curve_figure(curve: dict[str, dict[str, list[dict]]], path: Path, metric: str = METRIC) -> None:
    """Mean ± std of ``metric`` against the training images (log scale), one line per method."""
    import matplotlib.pyplot as plt

    from hkd.reporting.figures import save_figure  # importing it selects the Agg backend

    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    key = metric.split(".", 1)[1]
    for method in dict.fromkeys(method for methods in curve.values() for method in methods):
        sizes, means, stds = [], [], []
        for methods_at in curve.values():
            if method in methods_at:
                values = [record["test"][key] for record in methods_at[method]]
                sizes.append(training_images(methods_at[method]))
                means.append(float(np.mean(values)))
                stds.append(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0)
        axis.errorbar(sizes, means, yerr=stds, marker="o", capsize=3, label=method)
    axis.set_xscale("log")
    axis.set_xlabel("training images")
    axis.set_ylabel(metric)
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
    return atomic_write_text(stem.with_suffix(".md"), curve_table(curve) + footer + "\n")
