"""The clinical evaluation report of one model on one test set (``hkd report``; written for every
run and every ``hkd test``): ``report.json``, ``report.md`` and its figures (``roc.png``,
``pr.png``, ``reliability.png``) in ``FOLDER/report/``.

Every figure comes with a bootstrap 95 % interval (patients resampled where ids exist): per class
sensitivity, specificity, PPV, NPV, F1 at the operating point (the most probable class, or a
threshold); one-vs-rest AUROC and average precision, macro and micro; calibration (ECE, class-wise
ECE, NLL, Brier) as deployed, without any temperature, and with the temperature fitted on the
validation split; the same per subgroup of any metadata column, small subgroups flagged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hkd.atomic import atomic_write_json, atomic_write_text
from hkd.errors import ConfigError
from hkd.evaluation import metrics
from hkd.evaluation.bootstrap import intervals
from hkd.evaluation.figures import save_curves, save_reliability
from hkd.evaluation.operating_points import operating_thresholds
from hkd.evaluation.predictions import Predictions, predictions_file, read_predictions
from hkd.evaluation.report_text import markdown
from hkd.evaluation.temperature import fit_temperature, softmax

REPORT_FOLDER = "report"
REPORT_FIGURES = ("roc", "pr", "reliability")  # REPORT_FOLDER/NAME.png


@dataclass(frozen=True)
class ReportOptions:
    by: tuple[str, ...] = ()  # metadata columns to break the results down by
    thresholds: dict[str, float] = field(default_factory=dict)  # CLASS -> threshold
    target_sensitivity: dict[str, float] = field(default_factory=dict)  # CLASS -> target, chosen on val
    bootstrap: int = 1000  # resamples behind every interval
    min_subgroup: int = 30  # subgroups with fewer images are flagged
    seed: int = 0


def with_intervals(values: dict, ci: dict) -> dict:
    """``{name: {"value": v, "ci": [low, high]}}`` (per class: lists of both)."""
    return {key: {"value": np.asarray(value).tolist(), "ci": ci.get(key)} for key, value in values.items()}


def class_metrics(p: Predictions, thresholds: dict[int, float], options: ReportOptions) -> dict:
    """Per class at the operating point, and the AUCs, each with its interval."""
    def statistic(pick: np.ndarray) -> dict:
        found = {k: v for k, v in metrics.per_class(p.probabilities[pick], p.labels[pick], thresholds).items()
                 if k != "support"}
        return {**found, **metrics.aucs(p.probabilities[pick], p.labels[pick])}

    point = statistic(np.arange(len(p)))
    ci = intervals(statistic, p.patients, len(p), options.bootstrap, options.seed)
    support = metrics.per_class(p.probabilities, p.labels, thresholds)["support"]
    return {**with_intervals(point, ci), "support": support.astype(int).tolist()}


def calibration_section(test: Predictions, val: Predictions | None) -> dict:
    """Calibration as deployed, and, where logits were kept, before any temperature and with the
    temperature fitted on the validation split."""
    out = {"as_deployed": metrics.calibration(test.probabilities, test.labels)}
    if test.logits is not None:
        out["uncalibrated"] = metrics.calibration(softmax(test.logits), test.labels)
    if test.logits is not None and val is not None and val.logits is not None:
        temperature = fit_temperature(val.logits, val.labels)
        out["temperature_fitted_on_validation"] = temperature
        out["temperature_scaled"] = metrics.calibration(softmax(test.logits, temperature), test.labels)
    return out


def subgroups(p: Predictions, columns: tuple[str, ...], options: ReportOptions) -> dict:
    """Accuracy, balanced accuracy and macro AUROC per value of each column (and of their
    combination when several are given), with intervals and counts; small ones flagged."""
    missing = [c for c in columns if c not in p.metadata]
    if missing:
        raise ConfigError(f"--by {','.join(missing)}: {p.path} has no such column (metadata columns there: "
                          f"{', '.join(p.metadata) or 'none'})")
    keys = [" / ".join(values) for values in zip(*(p.metadata[c] for c in columns))]
    out = {}
    for value in sorted(set(keys)):
        rows = np.flatnonzero(np.array(keys) == value)
        patients = [p.patients[r] for r in rows]
        out[value or "(blank)"] = {"images": int(len(rows)), "patients": len(set(patients)),
                                   "small": bool(len(rows) < options.min_subgroup),
                                   "classes": np.bincount(p.labels[rows], minlength=len(p.classes)).tolist(),
                                   **scores(p.probabilities[rows], p.labels[rows], patients, options)}
    return {"columns": list(columns), "groups": out}


def evaluation_report(test: Predictions, val: Predictions | None, options: ReportOptions) -> dict:
    """Every section of the report as plain values."""
    points = operating_thresholds(test.classes, options.thresholds, options.target_sensitivity,
                                  val.probabilities if val is not None else None,
                                  val.labels if val is not None else None)
    thresholds = {test.classes.index(name): point["threshold"] for name, point in points.items()}
    report = {"predictions": str(test.path), "images": len(test), "patients": len(set(test.patients)),
              "classes": test.classes, "resampled": "patients" if len(set(test.patients)) < len(test)
              else "images", "bootstrap": options.bootstrap, "operating_points": points,
              "per_class": class_metrics(test, thresholds, options),
              "overall": scores(test.probabilities, test.labels, test.patients, options),
              "calibration": calibration_section(test, val)}
    if options.by:
        report["subgroups"] = subgroups(test, tuple(options.by), options)
    return report


def scores(probabilities: np.ndarray, labels: np.ndarray, patients: list[str],
           options: ReportOptions) -> dict:
    """Accuracy, balanced accuracy and macro AUROC with their intervals."""
    def statistic(pick: np.ndarray) -> dict:
        return metrics.summary_scores(probabilities[pick], labels[pick])

    ci = intervals(statistic, patients, len(labels), options.bootstrap, options.seed)
    return with_intervals(statistic(np.arange(len(labels))), ci)


def write_report(folder: str | Path, options: ReportOptions, title: str,
                 validation_folder: str | Path | None = None) -> Path:
    """The report of ``FOLDER/test_predictions.csv`` in ``FOLDER/report/``, with the validation
    predictions of ``validation_folder`` (default ``FOLDER``; an external test: the run's) where
    present; the markdown file's path."""
    folder = Path(folder)
    test = read_predictions(predictions_file(folder, "test"))
    val_path = predictions_file(validation_folder or folder, "val")
    val = read_predictions(val_path) if val_path.is_file() else None
    report = evaluation_report(test, val, options)
    out = folder / REPORT_FOLDER
    save_curves(metrics.curves(test.probabilities, test.labels), report, out)
    calibration = report["calibration"]
    temperature = calibration.get("temperature_fitted_on_validation")
    diagrams = {f"as deployed (ECE {calibration['as_deployed']['ece']:.3f})":
                metrics.reliability(test.probabilities, test.labels)}
    if temperature is not None:
        diagrams[f"temperature {temperature:.2f} from validation (ECE "
                 f"{calibration['temperature_scaled']['ece']:.3f})"] = \
            metrics.reliability(softmax(test.logits, temperature), test.labels)
    save_reliability(diagrams, out / "reliability.png")
    atomic_write_json(out / "report.json", report)
    return atomic_write_text(out / "report.md", markdown(report, title))
