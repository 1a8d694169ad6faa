"""The clinical evaluation report as markdown (``report.md``), from ``report.json``'s values."""

from __future__ import annotations

import math

PER_CLASS = (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"),
             ("npv", "NPV"), ("f1", "F1"), ("auroc", "AUROC"), ("average_precision", "AP"))
CALIBRATION = (("ece", "ECE"), ("classwise_ece", "class-wise ECE"), ("nll", "NLL"), ("brier", "Brier"))


def with_ci(value: float, ci: list[float] | None, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    scale, digits = (100, 1) if percent else (1, 3)
    text = f"{scale * value:.{digits}f}"
    if ci and not any(math.isnan(v) for v in ci):
        text += f" ({scale * ci[0]:.{digits}f}–{scale * ci[1]:.{digits}f})"
    return text


def entry(section: dict, key: str, index: int | None = None) -> str:
    value, ci = section[key]["value"], section[key]["ci"]
    if index is not None:
        value, ci = value[index], ci[index] if ci else None
    return with_ci(value, ci)


def markdown(report: dict, title: str) -> str:
    classes, per_class = report["classes"], report["per_class"]
    lines = [f"# Clinical evaluation: {title}", "",
             f"{report['images']} test images of {report['patients']} patients; every interval is a "
             f"bootstrap 95 % CI over {report['bootstrap']} resamples of {report['resampled']}. "
             "Percentages.", "",
             "| overall | accuracy | balanced accuracy | macro AUROC |", "|---|---|---|---|",
             "| all images | " + " | ".join(entry(report["overall"], key) for key in
                                           ("accuracy", "balanced_accuracy", "auroc")) + " |", "",
             "## Per class (one-vs-rest)", ""]
    points = report["operating_points"]
    called = [f"{name} called at p ≥ {point['threshold']:.3f} ({point['set_by']})"
              for name, point in points.items()]
    lines += [f"Operating point: {', '.join(called)}; the other classes: the most probable class."
              if points else "Operating point: the most probable class.", ""]
    lines += ["| class | support | " + " | ".join(name for _, name in PER_CLASS) + " |",
              "|---|---|" + "---|" * len(PER_CLASS)]
    for c, name in enumerate(classes):
        lines.append(f"| {name} | {per_class['support'][c]} | "
                     + " | ".join(entry(per_class, key, c) for key, _ in PER_CLASS) + " |")
    averages = " / ".join(entry(per_class, key) for key in ("auroc_macro", "auroc_micro"))
    precisions = " / ".join(entry(per_class, key)
                            for key in ("average_precision_macro", "average_precision_micro"))
    lines += ["", f"Macro / micro AUROC: {averages}; macro / micro AP: {precisions}. Curves: `roc.png`, "
                  "`pr.png`.", "", "## Calibration", "",
              "| probabilities | " + " | ".join(name for _, name in CALIBRATION) + " |",
              "|---|" + "---|" * len(CALIBRATION)]
    calibration = report["calibration"]
    temperature = calibration.get("temperature_fitted_on_validation")
    for key, name in (("as_deployed", "as deployed"), ("uncalibrated", "without temperature"),
                      ("temperature_scaled", f"temperature {temperature:.3f} fitted on validation"
                       if temperature else "")):
        if key in calibration:
            values = " | ".join(f"{calibration[key][metric]:.4f}" for metric, _ in CALIBRATION)
            lines.append(f"| {name} | {values} |")
    lines += ["", "ECE in 15 equal-width confidence bins (lower is better); reliability diagram: "
                  "`reliability.png`."]
    if "subgroups" in report:
        lines += ["", f"## Subgroups by {' / '.join(report['subgroups']['columns'])}", "",
                  *subgroup_lines(report["subgroups"])]
    return "\n".join(lines) + "\n"


def subgroup_lines(subgroups: dict) -> list[str]:
    """The subgroup table: counts, scores with intervals, small ones flagged."""
    lines = ["| subgroup | images | patients | accuracy | balanced accuracy | macro AUROC | |",
             "|---|---|---|---|---|---|---|"]
    for value, group in subgroups["groups"].items():
        scores = " | ".join(entry(group, key) for key in ("accuracy", "balanced_accuracy", "auroc"))
        flag = "small: read with care" if group["small"] else ""
        lines.append(f"| {value} | {group['images']} | {group['patients']} | {scores} | {flag} |")
    return lines
