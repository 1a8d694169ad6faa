"""The clinical evaluation report's benchmark figures (issue #28), recorded in
``benchmarks/results/clinical.json``, from which ``make results`` makes ``clinical.md``:

- calibration of the clean-Kermany baseline (``kermany_cf`` matrix, every seed): ECE, NLL and Brier
  without a temperature and with the one fitted on the validation split, on the test split;
- ``hkd compare --paired`` of the Kermany baseline and HKD (lung prior) on the same test images;
- subgroups of covid-chestxray by sex and view: the out-of-fold test predictions of the
  ``covid_cv`` baseline's five folds (seed 0), pooled into one report.

    python -m benchmarks.matrix kermany_cf --seeds 0 1 2 && python -m benchmarks.clinical
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from benchmarks.matrix import REPO, matrix_rows, slug, train_row
from benchmarks.report import clinical_tables
from hkd.atomic import atomic_write_text
from hkd.evaluation.paired import paired_comparison
from hkd.evaluation.predictions import predictions_file, read_predictions
from hkd.evaluation.report import ReportOptions, write_report

RESULTS = REPO / "benchmarks" / "results"
KERMANY = ("kermany_cf", "baseline", "hkd (lung prior)")  # matrix, model A, model B
COVID = ("covid_cv", "baseline", 5)  # matrix, row, folds
SUBGROUPS = ("sex", "view")


def kermany_runs(runs: Path, label: str) -> dict[int, Path]:
    """The matrix's finished runs of a row, by seed."""
    found = {}
    for run_dir in sorted((runs / KERMANY[0] / slug(label)).glob("seed*")):
        if (run_dir / "report" / "report.json").is_file():
            found[int(run_dir.name.removeprefix("seed"))] = run_dir
    return found


def calibration_records(runs: Path) -> list[dict]:
    records = []
    for seed, run_dir in kermany_runs(runs, KERMANY[1]).items():
        calibration = json.loads((run_dir / "report" / "report.json").read_text())["calibration"]
        records.append({"seed": seed, "temperature": calibration["temperature_fitted_on_validation"],
                        "uncalibrated": calibration["uncalibrated"],
                        "temperature_scaled": calibration["temperature_scaled"]})
    return records


def paired_records(runs: Path) -> list[dict]:
    a_runs, b_runs = kermany_runs(runs, KERMANY[1]), kermany_runs(runs, KERMANY[2])
    return [{"seed": seed, "a": KERMANY[1], "b": KERMANY[2],
             **paired_comparison(read_predictions(predictions_file(a_runs[seed], "test")),
                                 read_predictions(predictions_file(b_runs[seed], "test")), seed=seed)}
            for seed in sorted(set(a_runs) & set(b_runs))]


def pooled_covid_report(runs: Path) -> dict:
    """Train (or find) the covid_cv baseline's folds, pool their test predictions, report by sex and view."""
    matrix, label, folds = COVID
    row = matrix_rows(matrix)[label]
    rows, header = [], None
    for fold in range(folds):
        run_dir = train_row(matrix, row, 0, fold, runs)
        if run_dir is None:
            raise SystemExit(f"{matrix} {label} fold {fold} failed")
        with open(predictions_file(run_dir, "test"), newline="") as handle:
            reader = csv.DictReader(handle)
            header = header or reader.fieldnames
            rows += list(reader)
    pooled = runs / "clinical" / "covid_cv_baseline_seed0_pooled"
    pooled.mkdir(parents=True, exist_ok=True)
    with open(predictions_file(pooled, "test"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    write_report(pooled, ReportOptions(by=SUBGROUPS), "covid-chestxray baseline, 5 folds pooled (seed 0)")
    report = json.loads((pooled / "report" / "report.json").read_text())
    return {key: report[key] for key in ("images", "patients", "overall", "subgroups")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench")
    args = parser.parse_args()
    record = {"kermany_calibration": calibration_records(args.runs),
              "kermany_paired": paired_records(args.runs), "covid_subgroups": pooled_covid_report(args.runs)}
    path = RESULTS / "clinical.json"
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    atomic_write_text(path.with_suffix(".md"), clinical_tables(record))
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
