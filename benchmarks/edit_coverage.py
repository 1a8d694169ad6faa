"""Where IMIL's edits landed, against the planted marker (a matrix's IMIL runs, still on disk):
the share of the clinician's and of the propagated edits that cover the marker (>= 90 % of its
pixels), part of it, or none, and how many training images carry a marker no edit covers.

    python -m benchmarks.edit_coverage kermany_corner_tag_cf \
        --only "hkd (lung prior) + imil (propagate, inpaint), cf selection"

Writes ``benchmarks/results/MATRIX_edit_coverage.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from benchmarks.matrix import matrix_names, slug
from hkd.atomic import atomic_write_text
from hkd.config import load_run_config
from hkd.data.rle import decode
from hkd.run.build import build_datamodule

REPO = Path(__file__).resolve().parents[1]
COVERS = 0.9  # an edit "covers" the marker when it removes at least this share of its pixels


def coverage(run_dir: Path) -> dict:
    """Counts of (source, covers | partly | misses) over the run's edits, and the markers no edit touches."""
    datamodule = build_datamodule(load_run_config(run_dir / "config.yaml"))
    datamodule.setup("fit")
    images = datamodule.training_images()
    edits = json.loads((run_dir / "imil" / "edits.json").read_text())["edits"]
    counts: Counter = Counter()
    edited = set()
    for edit in edits:
        marker = images.irrelevant_mask(int(edit["idx"]))
        if not marker.any():
            continue
        edited.add(int(edit["idx"]))
        share = (decode(edit["mask"]) & marker).sum() / marker.sum()
        verdict = "covers" if share >= COVERS else "partly" if share > 0 else "misses"
        counts[f"{edit['source']}: {verdict}"] += 1
    untouched = [int(i) for i in images.indices if int(i) not in edited]
    counts["markers no edit touches"] = sum(bool(images.irrelevant_mask(i).any()) for i in untouched)
    return {"run_dir": str(run_dir), "seed": int(run_dir.name.removeprefix("seed")), **counts}


def table(rows: list[dict]) -> str:
    keys = sorted({key for row in rows for key in row if key not in ("run_dir", "seed", "row")})
    lines = ["| row | seed | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    lines += [f"| {row['row']} | {row['seed']} | " + " | ".join(str(row.get(key, 0)) for key in keys) + " |"
              for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("matrix", choices=matrix_names())
    parser.add_argument("--only", nargs="+", required=True, help="the IMIL rows to look at")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench",
                        help="where the matrices' run directories are (default runs/bench)")
    args = parser.parse_args()
    rows = []
    for row in args.only:
        for run_dir in sorted((args.runs / args.matrix / slug(row)).glob("seed*")):
            rows.append({"row": row, **coverage(run_dir)})
            print(rows[-1])
    results = REPO / "benchmarks" / "results"
    atomic_write_text(results / f"{args.matrix}_edit_coverage.json", json.dumps(rows, indent=1) + "\n")
    note = (f"`python -m benchmarks.edit_coverage {args.matrix} --only ...`; an edit covers the marker "
            f"when it removes >= {COVERS:.0%} of its pixels")
    atomic_write_text(results / f"{args.matrix}_edit_coverage.md", table(rows) + f"\n\n<sub>{note}</sub>\n")


if __name__ == "__main__":
    main()
