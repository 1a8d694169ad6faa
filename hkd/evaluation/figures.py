"""The report's figures: one-vs-rest ROC and PR curves per class (with the micro average) and the
reliability diagram."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from hkd.reporting.figures import save_figure


def save_curves(curves: dict, report: dict, folder: Path) -> None:
    """``roc.png`` and ``pr.png``: a line per class, labelled with its AUC and interval."""
    classes, aucs = report["classes"], report["per_class"]
    for kind, key, micro, axes_names in (("roc", "auroc", "roc_micro", ("1 − specificity", "sensitivity")),
                                         ("pr", "average_precision", "pr_micro", ("sensitivity (recall)",
                                                                                  "PPV (precision)"))):
        figure, axis = plt.subplots(figsize=(5.2, 4.6))
        for c, curve in enumerate(curves[kind]):
            if curve is None:
                continue
            low, high = aucs[key]["ci"][c]
            value = aucs[key]["value"][c]
            axis.plot(*curve, lw=1.5, label=f"{classes[c]}: {value:.3f} ({low:.3f}–{high:.3f})")
        micro_value = report["per_class"][f"{key}_micro"]["value"]
        axis.plot(*curves[micro], "k--", lw=1, label=f"micro: {micro_value:.3f}")
        if kind == "roc":
            axis.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        axis.set(xlabel=axes_names[0], ylabel=axes_names[1], xlim=(0, 1), ylim=(0, 1.02),
                 title=f"{'ROC' if kind == 'roc' else 'Precision–recall'} (one-vs-rest; AUC, 95 % CI)")
        axis.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
        save_figure(figure, folder / f"{kind}.png")


def save_reliability(diagrams: dict[str, dict], path: Path) -> None:
    """Accuracy against mean confidence per bin, one panel per probability set, bin counts below."""
    figure, axes = plt.subplots(2, len(diagrams), figsize=(4.2 * len(diagrams), 5.2), squeeze=False,
                                gridspec_kw={"height_ratios": [3, 1]})
    for column, (name, bins) in enumerate(diagrams.items()):
        edges = bins["edges"]
        centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
        top, bottom = axes[0, column], axes[1, column]
        filled = bins["count"] > 0
        top.bar(centres[filled], bins["accuracy"][filled], width=width * 0.9, color="#4c72b0",
                label="accuracy")
        top.plot([0, 1], [0, 1], color="0.5", lw=0.8, label="perfect calibration")
        top.plot(centres[filled], bins["confidence"][filled], "o", color="#dd8452", ms=4,
                 label="mean confidence in the bin")
        top.set(xlim=(0, 1), ylim=(0, 1), title=name, ylabel="accuracy")
        top.legend(fontsize=7, loc="upper left")
        bottom.bar(centres, bins["count"], width=width * 0.9, color="0.6")
        bottom.set(xlim=(0, 1), xlabel="confidence (top class)", ylabel="images")
        bottom.set_yscale("symlog")
    save_figure(figure, path)
