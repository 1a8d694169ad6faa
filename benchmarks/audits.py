"""`hkd audit` of a matrix's finished runs, recorded: ``benchmarks/results/NAME_audit.json`` (one
record per run: the row, seed, split, flip rate, the same-class control and the shortcut flip rate
with their intervals, balanced accuracy per view), from which ``make results`` makes the table
``NAME_audit.md`` and pastes it into the docs.

    python -m benchmarks.audits kermany_shortcut_cf --only baseline "shortcut-free (ceiling)"
    # every model on the same data carrying the shortcut (its validation split, as a user's own data):
    python -m benchmarks.audits kermany_shortcut_cf --only baseline "shortcut-free (ceiling)" \\
        --split val --data data.shortcut.bias=0.95 --save kermany_shortcut_cf_val
"""

from __future__ import annotations

import argparse
import json

from benchmarks.matrix import REPO, matrix_rows, slug
from benchmarks.report import audit_table
from hkd.atomic import atomic_write_text
from hkd.inference.audit import SPLITS, audit_model
from hkd.reporting.model_card import AUDIT

RESULTS = REPO / "benchmarks" / "results"
KEPT = ("split", "with_region", "flip_rate", "flip_rate_ci", "flip_rate_same_class",
        "flip_rate_same_class_ci", "shortcut_flip_rate", "shortcut_flip_rate_ci", "balanced_accuracy",
        "balanced_accuracy_ci", "verdict")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matrix")
    parser.add_argument("--only", nargs="*", default=None, help="rows to audit (default: all)")
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench"))
    parser.add_argument("--split", choices=SPLITS, default="test", help="the split audited")
    parser.add_argument("--data", nargs="*", default=[],
                        help="data.* keys every run is audited with (default: each run's own data)")
    parser.add_argument("--save", default=None, help="records' name: NAME_audit.json (default: MATRIX)")
    args = parser.parse_args()
    audit_name = f"{args.split}-{'-'.join(args.data) or 'own'}".replace("=", "").replace(".", "_")
    records = []
    for label in matrix_rows(args.matrix):
        if args.only and label not in args.only:
            continue
        for run_dir in sorted((REPO / args.runs / args.matrix / slug(label)).glob("seed*")):
            if not (run_dir / "summary.json").is_file():
                continue
            folder = audit_model(run_dir, args.data, args.split, audit_name)
            audit = json.loads((folder / AUDIT).read_text())
            summary = json.loads((run_dir / "summary.json").read_text())
            records.append({"name": label, "seed": summary["seed"], "git_commit": summary["git_commit"],
                            "data": args.data, **{key: audit[key] for key in KEPT}})
            print(f"{label} {run_dir.name}: {audit['verdict']}", flush=True)
    path = RESULTS / f"{args.save or args.matrix}_audit.json"
    atomic_write_text(path, json.dumps(records, indent=1) + "\n")
    atomic_write_text(path.with_suffix(".md"), audit_table(records))
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
