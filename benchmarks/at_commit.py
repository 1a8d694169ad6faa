"""Run a synthetic matrix's rows with the code of another commit, on the same images, and record
them beside this checkout's rows (label ``ROW @ COMMIT``): the before/after numbers of a
regression, and each step of a ``git bisect``.

    python -m benchmarks.at_commit 439c924 hkd_boxes --only "hkd (finding boxes)" --seeds 0 1 2 3 4
    python -m benchmarks.at_commit 55be994 hkd_boxes --only "hkd (finding boxes)" --no-record

The commit is checked out into a worktree under ``runs/bench/worktrees/`` and runs there with this
checkout's Python environment. The data is generated once by this checkout (the synthetic format
writes a folder data set) and handed to the old code as ``data.format=folder`` with the same
relevant categories, so every commit reads the same files; the row's other overrides are kept.
The records go to ``benchmarks/results/MATRIX.jsonl`` (unless ``--no-record``) with that commit as
their ``git_commit``; ``make results`` shows them as rows of the matrix's table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from benchmarks.matrix import REPO, Row, add_record, matrix_rows, quiet, record_of, slug
from hkd.atomic import atomic_write_json
from hkd.run.resumable import train_resumable

WORKTREES = REPO / "runs" / "bench" / "worktrees"


def worktree(commit: str) -> tuple[Path, str]:
    """A checkout of ``commit`` (made once) and the commit's full hash."""
    full = subprocess.run(["git", "rev-parse", "--verify", f"{commit}^{{commit}}"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.strip()
    folder = WORKTREES / full[:12]
    if not (folder / "hkd").is_dir():
        subprocess.run(["git", "worktree", "add", "--force", "--detach", str(folder), full], cwd=REPO,
                       capture_output=True, text=True, check=True)
    return folder, full


def as_folder_data(experiment: str, overrides: list[str]) -> list[str]:
    """The row's overrides with its synthetic data replaced by the same images as a folder data set
    (generated here by this checkout), read with the same relevant categories."""
    from hkd.config import load_config
    from hkd.data.formats.synthetic import ensure_synthetic
    from hkd.run.build import synthetic_spec

    cfg = load_config(experiment, overrides)
    if cfg.data.format != "synthetic":
        raise SystemExit(f"{experiment}: only synthetic rows can run at another commit")
    root = ensure_synthetic(synthetic_spec(cfg), REPO / cfg.data.cache_dir).resolve()
    categories = ",".join(cfg.data.relevant_categories or ["finding"])
    kept = [o for o in overrides if not o.startswith("data.synthetic.")]
    return [*kept, "data.format=folder", f"data.root={root}", f"data.relevant_categories=[{categories}]"]


def run_at(code: Path, commit: str, matrix: str, label: str, row: Row, seed: int, record: bool) -> float:
    """One row and seed with the code in ``code``; its test accuracy."""
    name = f"{label} @ {commit[:7]}"
    out = REPO / "runs" / "bench" / matrix
    run_dir = out / slug(name) / f"seed{seed}"
    experiment, overrides = row.experiment, row.overrides
    if not (run_dir / "summary.json").is_file():  # older code knows no logging.epoch_lines
        folder_overrides = as_folder_data(experiment, [*overrides, f"seed={seed}"])
        train_resumable(experiment, [*folder_overrides, *quiet(out, slug(name), seed)], run_dir,
                        f"{name} seed{seed}", code=code, epoch_lines=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(name=name, git_commit=commit)  # older code did not record its commit
    atomic_write_json(run_dir / "summary.json", summary)
    if record:
        saved = OmegaConf.load(run_dir / "config.yaml")
        used = [f"data.root={saved.data.root}" if o.startswith("data.root=") else o
                for o in as_folder_data(experiment, [*overrides, f"seed={seed}"])]
        add_record(REPO / "benchmarks" / "results" / f"{matrix}.jsonl",
                   record_of(matrix, name, experiment, used, run_dir, row.ceiling))
    return float(summary["test"]["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="any git revision")
    parser.add_argument("matrix", help="a synthetic matrix of benchmarks/matrix.py, e.g. hkd_boxes")
    parser.add_argument("--only", nargs="*", default=None, help="labels to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--no-record", action="store_true",
                        help="print the accuracies only (a bisect step), write no record")
    args = parser.parse_args()
    code, commit = worktree(args.commit)
    for label, row in matrix_rows(args.matrix).items():
        if args.only and label not in args.only:
            continue
        accuracies = []
        for seed in args.seeds:
            accuracies.append(run_at(code, commit, args.matrix, label, row, seed, not args.no_record))
            print(f"{label} @ {commit[:7]} seed {seed}: test accuracy {accuracies[-1]:.3f}", flush=True)
        mean = sum(accuracies) / len(accuracies)
        print(f"{label} @ {commit[:7]}: mean test accuracy {mean:.3f} over seeds {args.seeds}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
