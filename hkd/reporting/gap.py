"""How much of a shortcut's damage a method undoes: the share of the gap between a reference (e.g.
the baseline trained with the shortcut) and a ceiling (the same model trained without it) each run
closes, paired by seed, with a bootstrap interval; and the share of the training images IMIL edited
(clinician marks and propagated edits apart). ``hkd compare --against A --ceiling B``."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from hkd.reporting.compare import group_key, paired_values


def gap_closed(summaries: list[dict], reference: str, ceiling: str, by: str = "name",
               metric: str = "test.balanced_accuracy", n_resamples: int = 10_000,
               seed: int = 0) -> dict[str, dict]:
    """{group: {share, ci, n}}: the share of the reference-to-ceiling gap each group closes,
    ``mean(group − reference) / mean(ceiling − reference)`` over the seeds (and folds) all three
    share, with a bootstrap 95 % interval that resamples those seeds jointly."""
    values = paired_values(summaries, by, metric)
    rows = {}
    for group, runs in values.items():
        if group in (reference, ceiling):
            continue
        shared = sorted(set(runs) & set(values[reference]) & set(values[ceiling]), key=str)
        if not shared:
            continue
        gains = np.array([runs[k] - values[reference][k] for k in shared])
        gaps = np.array([values[ceiling][k] - values[reference][k] for k in shared])
        picks = np.random.default_rng(seed).integers(0, len(shared), (n_resamples, len(shared)))
        with np.errstate(divide="ignore", invalid="ignore"):
            shares = gains[picks].mean(1) / gaps[picks].mean(1)
        rows[group] = {"share": float(gains.mean() / gaps.mean()) if gaps.mean() else float("nan"),
                       "gap": float(gaps.mean()), "n": len(shared),
                       "ci": [float(np.nanpercentile(shares, 2.5)), float(np.nanpercentile(shares, 97.5))]}
    return rows


def gap_table(rows: dict[str, dict], reference: str, ceiling: str,
              metric: str = "test.balanced_accuracy") -> str:
    """Markdown: the share of the gap each group closes, with its interval."""
    section, name = metric.split(".", 1)
    at = ", last epoch" if section.endswith("_last_epoch") else ""
    lines = [f"| run | n | share of the {reference} → {ceiling} gap closed ({name}{at}) "
             "| 95 % CI |", "|---|---|---|---|"]
    for group, row in rows.items():
        low, high = row["ci"]
        lines.append(f"| {group} | {row['n']} | {100 * row['share']:.0f} % "
                     f"(gap {100 * row['gap']:.1f} points) | {100 * low:.0f} % to {100 * high:.0f} % |")
    return "\n".join(lines)


def edited_share_table(summaries: list[dict], by: str = "name") -> str:
    """Markdown: the share of the training images IMIL edited, clinician marks and propagated
    edits apart (mean over runs); empty without IMIL runs."""
    shares: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for summary in summaries:
        if summary.get("imil_edited") is None:
            continue
        images = summary["splits"]["train"]["images"]
        clinician = summary["imil_clinician_edits"]
        propagated = summary["imil_edited"] - clinician
        shares[group_key(summary, by)].append((clinician / images, propagated / images))
    if not shares:
        return ""
    lines = ["| run | n | training images edited | by clinician marks | propagated |",
             "|---|---|---|---|---|"]
    for group, values in shares.items():
        clinician, propagated = np.mean(values, axis=0)
        lines.append(f"| {group} | {len(values)} | {100 * (clinician + propagated):.1f} % "
                     f"| {100 * clinician:.1f} % | {100 * propagated:.1f} % |")
    return "\n".join(lines)
