"""A benchmark matrix's report from its run records: the library's comparison tables (mean ± std,
paired differences, the share of the gap to the ceiling row each row closes, the share of images
IMIL edited); the ceiling is the row whose records carry ``"ceiling": true``."""

from __future__ import annotations

from hkd.reporting.compare import aggregate, markdown_table, paired_differences, paired_table
from hkd.reporting.gap import edited_share_table, gap_closed, gap_table

GAP_METRICS = ("test.balanced_accuracy", "test_last_epoch.balanced_accuracy")


def ceiling_of(records: list[dict]) -> str | None:
    """The row whose records say it is the matrix's ceiling (``"ceiling": true``), if any."""
    return next((record["name"] for record in records if record.get("ceiling")), None)


def benchmark_report(summaries: list[dict], paired_metrics: tuple[str, ...] = ("test.accuracy",)) -> str:
    """A matrix's tables: mean ± std per row, paired differences against the first row (per
    metric), the share of the gap to the ceiling row each row closes, and IMIL's edits."""
    table = aggregate(summaries, "name")
    text = markdown_table(table)
    reference = next(iter(table))
    if len(table) > 1:
        for metric in paired_metrics:
            text += "\n\n" + paired_table(paired_differences(summaries, reference, metric=metric),
                                          reference, metric)
    ceiling = ceiling_of(summaries)
    if ceiling and len(table) > 2:
        for metric in GAP_METRICS:  # at the selected checkpoint, then at the last epoch (where recorded)
            rows = gap_closed(summaries, reference, ceiling, metric=metric)
            if rows:
                text += "\n\n" + gap_table(rows, reference, ceiling, metric)
    if any(summary.get("val_last_epoch") for summary in summaries):
        text += "\n\n" + swap_view_table(summaries)
    edits = edited_share_table(summaries)
    return text + ("\n\n" + edits if edits else "")


def swap_view_table(summaries: list[dict]) -> str:
    """Per row: the balanced accuracy on the validation swap views at the selected and at the last
    epoch (is the swap still out of distribution for the model?), and the epochs (0-based) the
    runs selected."""
    lines = ["| run | n | validation swap views, selected epoch | last epoch | epochs selected (of 0 … last) "
             "|", "|---|---|---|---|---|"]
    for name in dict.fromkeys(summary["name"] for summary in summaries):
        mine = [summary for summary in summaries if summary["name"] == name]
        cells = []
        for section, key in (("val", "cf/balanced_accuracy"), ("val_last_epoch", "cf_balanced_accuracy")):
            values = [100 * (s.get(section) or {})[key] for s in mine if key in (s.get(section) or {})]
            cells.append(f"{sum(values) / len(values):.1f}" if values else "–")
        epochs = [s["epochs"] for s in mine if s.get("epochs")]
        chosen = ", ".join(str(e["selected"]) for e in epochs)
        chosen += f" (of 0 … {epochs[0]['last']})" if epochs else ""
        lines.append(f"| {name} | {len(mine)} | {cells[0]} | {cells[1]} | {chosen or '–'} |")
    return "\n".join(lines)


def audit_table(records: list[dict]) -> str:
    """``hkd audit`` records (``benchmarks/audits.py``): per row, the mean flip rate, the same-class
    control's and the shortcut flip rate (their difference; records made before the control have
    none: "–"), and the balanced accuracies per view."""
    lines = ["| run | seeds | flip rate under the swap | same-class control | shortcut flip rate "
             "| balanced accuracy: as is | swapped | region only |", "|---|---|---|---|---|---|---|---|"]

    def mean(values: list[float | None], unit: str = "") -> str:
        if any(value is None for value in values):
            return "–"
        return f"{100 * sum(values) / len(values):.1f}{unit}"

    for name in dict.fromkeys(r["name"] for r in records):
        mine = [r for r in records if r["name"] == name]
        rates = [mean([r.get(key) for r in mine], unit) for key, unit in
                 (("flip_rate", " %"), ("flip_rate_same_class", " %"), ("shortcut_flip_rate", " points"))]
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(rates) + " | "
                     + " | ".join(mean([r["balanced_accuracy"][view] for r in mine])
                                  for view in ("clean", "swap", "roi")) + " |")
    commits = sorted({r["git_commit"] for r in records})
    splits = sorted({r.get("split", "test") for r in records})
    data = sorted({" ".join(r.get("data") or []) for r in records} - {""})
    audited = f"the {' and '.join(splits)} split" + (f" with `{'; '.join(data)}`" if data else "")
    provenance = f"<sub>{len(records)} audits of {audited}, code {', '.join(commits)}</sub>"
    return "\n".join(lines) + f"\n\n{provenance}\n"


def clinical_tables(record: dict) -> str:
    """``benchmarks/clinical.py``'s record: the Kermany baseline's calibration before and after
    temperature scaling, the paired comparison of two Kermany models, covid-chestxray subgroups."""
    from hkd.evaluation.report_text import subgroup_lines

    metrics = {"ece": "ECE", "nll": "NLL", "brier": "Brier"}
    calibration = record["kermany_calibration"]
    lines = ["| seed | temperature (fitted on validation) | "
             + " | ".join(f"{name}: without → with" for name in metrics.values()) + " |",
             "|---|---|" + "---|" * len(metrics)]
    rows = [(str(row["seed"]), row["temperature"], row["uncalibrated"], row["temperature_scaled"])
            for row in calibration]
    if calibration:
        def mean(part: str) -> dict:
            return {m: sum(row[part][m] for row in calibration) / len(calibration) for m in metrics}

        rows.append(("mean", sum(row["temperature"] for row in calibration) / len(calibration),
                     mean("uncalibrated"), mean("temperature_scaled")))
    for seed, temperature, before, after in rows:
        changes = " | ".join(f"{before[m]:.4f} → {after[m]:.4f}" for m in metrics)
        lines.append(f"| {seed} | {temperature:.3f} | {changes} |")
    lines += ["", "| seed | accuracy A → B | McNemar p | Δ balanced accuracy (95 % CI) | p "
                  "| Δ macro AUROC (95 % CI) | p |", "|---|---|---|---|---|---|---|"]
    for row in record["kermany_paired"]:
        accuracy = row["accuracy"]
        differences = " | ".join(f"{100 * m['difference']:+.1f} ({100 * m['ci'][0]:+.1f} to "
                                 f"{100 * m['ci'][1]:+.1f}) | {m['p']:.3g}"
                                 for m in (row["balanced_accuracy"], row["auroc"]))
        lines.append(f"| {row['seed']} | {100 * accuracy['a']:.1f} → {100 * accuracy['b']:.1f} "
                     f"| {accuracy['p']:.2g} | {differences} |")
    if record["kermany_paired"]:
        first = record["kermany_paired"][0]
        lines.append(f"\nA = {first['a']}, B = {first['b']}, each on {first['images']} test images.")
    covid = record["covid_subgroups"]
    columns = " / ".join(covid["subgroups"]["columns"])
    lines += ["", f"covid-chestxray, {covid['images']} images of {covid['patients']} patients (out-of-fold "
                  f"test predictions of five folds), by {columns}:", "", *subgroup_lines(covid["subgroups"])]
    return "\n".join(lines) + "\n"
