"""External validation of a matrix's finished runs with ``hkd test``, recorded like matrix runs:

    python -m benchmarks.external kermany_to_covid    # Kermany-trained models on covid-chestxray adults

Each finished ``runs/bench/MATRIX/ROW/seedN`` is tested on the other data set; the results go to
``benchmarks/results/NAME.jsonl`` (one record per run; ``make results`` makes ``NAME.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.matrix import REPO, SHARED, machine
from benchmarks.results import load_records, write_matrix
from hkd.atomic import atomic_write_text
from hkd.inference.external import external_test

# name -> (matrix whose runs are tested, data.* overrides, --map)
EXTERNAL = {
    "kermany_to_covid": ("kermany", [
        "data.format=covid-chestxray", f"data.root={SHARED / 'covid-chestxray'}", "data.include_healthy=true",
        "data.classes=[healthy,bacterial,viral]", "data.folds=0", "data.prior_generator=null"],
        {"healthy": "normal"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(EXTERNAL))
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench", help="where the matrices ran")
    args = parser.parse_args()
    matrix, overrides, class_map = EXTERNAL[args.name]
    records_file = REPO / "benchmarks" / "results" / f"{args.name}.jsonl"
    runs = sorted((args.runs / matrix).glob("*/seed*/summary.json"))
    if not runs:
        sys.exit(f"no finished runs under runs/bench/{matrix}: run python -m benchmarks.matrix {matrix}")
    kept = {(r["name"], r["seed"], r.get("fold")): r for r in load_records(records_file)} \
        if records_file.is_file() else {}  # runs not tested again keep their records
    for summary_file in runs:
        run_dir = summary_file.parent
        trained = json.loads(summary_file.read_text())
        folder = external_test(run_dir, overrides, args.name, "all", class_map)
        summary = json.loads((folder / "summary.json").read_text())
        record = {"matrix": args.name, "name": trained["name"], "experiment": f"hkd test {run_dir.name}",
                  **{key: summary.get(key) for key in ("seed", "fold", "test", "explanations", "test_ci")},
                  "external": summary["external"], "git_commit": trained.get("git_commit"),
                  "overrides": overrides, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "machine": machine()}
        kept[(record["name"], record["seed"], record["fold"])] = record
        print(f"{trained['name']} seed {summary['seed']}: balanced accuracy "
              f"{summary['test']['balanced_accuracy']:.3f} on {summary['external']['images']} images")
    atomic_write_text(records_file, "".join(json.dumps(record) + "\n" for record in kept.values()))
    print(write_matrix(records_file).read_text())


if __name__ == "__main__":
    main()
