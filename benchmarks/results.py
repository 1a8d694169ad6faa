"""Regenerate every benchmark table and figure from the committed run records, without training:

    python -m benchmarks.results          (make results)

``benchmarks/results/MATRIX.jsonl`` (one record per finished run, appended by ``matrix.py``) ->
``MATRIX.md`` (mean ± std per row, paired differences against the first row, the share of the gap
to the ceiling row (its records say ``"ceiling": true``) each row closes, IMIL's edits) and
``MATRIX.png``; ``tuned.json`` (the settings ``benchmarks/tune.py`` found) -> ``tuned.md``. In
``README.md`` and ``docs/*.md`` the text between ``<!-- results:MATRIX -->`` and
``<!-- /results:MATRIX -->`` is replaced by ``MATRIX.md``, so no table is ever typed by hand.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from benchmarks.learning_curve import write_curve
from benchmarks.report import audit_table, benchmark_report, clinical_tables
from hkd.atomic import atomic_write_text
from hkd.reporting.compare import aggregate, paired_differences, paired_table, plot

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PAIRED_METRICS = ("test.balanced_accuracy", "explanations.relevance_mass")
NOT_YET = "*No runs recorded yet: `{command}`, then `make results`.*\n"
COMMANDS = REPO / "benchmarks" / "commands.yaml"  # the command behind each block that is not a matrix's
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def load_records(path: Path) -> list[dict]:
    """The records of one matrix, the latest per row, seed and fold (a re-run replaces a run)."""
    latest: dict[tuple, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not a JSON record ({error.msg})") from error
        latest[(record["name"], record.get("seed"), record.get("fold"))] = record
    return list(latest.values())


def made_by(block: str) -> str:
    """The command that makes a results block's table."""
    from benchmarks.matrix import MATRICES, load_matrix

    if (MATRICES / f"{block}.yaml").is_file():
        return load_matrix(block).command or f"python -m benchmarks.matrix {block}"
    return yaml.safe_load(COMMANDS.read_text()).get(block, f"python -m benchmarks.matrix {block}")


def references(matrix: str) -> dict[str, tuple[str, str]]:
    """{row: (another matrix, its row)}: rows read against a row of another matrix that ran the same
    task on the same seeds (the reference's commits are stated under its table)."""
    from benchmarks.matrix import MATRICES, load_matrix

    if not (MATRICES / f"{matrix}.yaml").is_file():
        return {}
    return {row: (ref["matrix"], ref["row"]) for row, ref in load_matrix(matrix).references.items()}


def made_when(records: list[dict]) -> str:
    """``FIRST to LAST date, code COMMITS`` of the records (runs or studies) behind a table."""
    commits = sorted({str(r.get("git_commit"))[:12] for r in records})
    dates = sorted(str(r.get("date", ""))[:10] for r in records)
    return f"{dates[0]} to {dates[-1]}, code {', '.join(commits)}"


def commit_comparisons(records: list[dict]) -> str:
    """Rows run with another commit's code (``ROW @ COMMIT``): each later commit's row against the
    first commit's, paired by seed (the same code path and data)."""
    by_row: dict[str, list[str]] = {}
    for record in records:
        if " @ " in record["name"]:
            names = by_row.setdefault(record["name"].split(" @ ")[0], [])
            if record["name"] not in names:
                names.append(record["name"])
    tables = []
    for names in by_row.values():
        if len(names) < 2:
            continue
        chosen = [r for r in records if r["name"] in names]
        differences = paired_differences(chosen, names[0], metric=PAIRED_METRICS[0])
        tables.append(paired_table({name: differences[name] for name in names[1:]}, names[0],
                                   PAIRED_METRICS[0]))
    return "".join(f"\n\n{table}" for table in tables)


def reference_comparisons(matrix: str, records: list[dict], results: Path) -> str:
    """Each row of the matrix's ``references`` against its reference row of another matrix, paired by
    seed (``ROW (MATRIX)``), with the dates and commits of the reference's runs."""
    tables = []
    for row, (other, reference) in references(matrix).items():
        source = results / f"{other}.jsonl"
        theirs = [r for r in load_records(source) if r["name"] == reference] if source.is_file() else []
        label = f"{reference} ({other})"
        chosen = [r for r in records if r["name"] == row] + [{**r, "name": label} for r in theirs]
        differences = paired_differences(chosen, label, metric=PAIRED_METRICS[0]) if theirs else {}
        if differences:
            tables.append(f"{paired_table(differences, label, PAIRED_METRICS[0])}\n\n"
                          f"<sub>{label}: {len(theirs)} runs, {made_when(theirs)}</sub>")
    return "".join(f"\n\n{table}" for table in tables)


def matrix_text(records: list[dict], matrix: str = "", results: Path = RESULTS) -> str:
    """A matrix's tables with the commits and dates of the runs behind them."""
    machines = sorted({str(r.get("machine")) for r in records})
    provenance = f"{len(records)} runs, {made_when(records)}; {'; '.join(machines)}"
    return (benchmark_report(records, PAIRED_METRICS) + commit_comparisons(records)
            + reference_comparisons(matrix, records, results) + f"\n\n<sub>{provenance}</sub>")


def write_matrix(records_file: Path) -> Path:
    """``MATRIX.md`` and ``MATRIX.png`` beside the records; the table's path."""
    records = load_records(records_file)
    table_file = records_file.with_suffix(".md")
    atomic_write_text(table_file, matrix_text(records, records_file.stem, records_file.parent) + "\n")
    plot(aggregate(records, "name"), records_file.with_suffix(".png"))
    reused = sum("reused_from" in record for record in records)
    write_curve(records, records_file,  # learning-curve matrices only
                f"{len(records)} runs, {made_when(records)}"
                + (f"; {reused} of them another matrix's run of the same configuration (reused_from)"
                   if reused else ""))
    return table_file


def write_tuned(tuned_file: Path) -> Path:
    """``tuned.md``: the settings ``benchmarks/tune.py`` found (``tuned.json``), per method."""
    tuned = json.loads(tuned_file.read_text())
    lines = ["| method | tuned setting | validation score (shortcut-free) | trials | searched |",
             "|---|---|---|---|---|"]
    for method, found in tuned.items():
        lines.append(f"| {method} | `{' '.join(found['overrides'])}` | {found['metric']} "
                     f"{100 * found['value']:.1f} | {found['n_trials']} | `{' '.join(found['spaces'])}` |")
    fixed = sorted({" ".join(found["fixed"]) for found in tuned.values()})
    lines.append(f"\n<sub>{len(tuned)} studies, {made_when(list(tuned.values()))}; "
                 f"every trial with `{'; '.join(fixed)}`</sub>")
    table_file = tuned_file.with_suffix(".md")
    atomic_write_text(table_file, "\n".join(lines) + "\n")
    return table_file


def fill_document(path: Path, results: Path = RESULTS) -> bool:
    """Replace each results block of a markdown file by its table; True when the file changed."""
    text = path.read_text()

    def table(match: re.Match) -> str:
        source = results / f"{match['name']}.md"
        if not source.is_file():  # said, not hidden: the block shows how to make its table
            return match.group(1) + NOT_YET.format(command=made_by(match["name"])) + match.group(4)
        return match.group(1) + source.read_text() + match.group(4)

    filled = BLOCK.sub(table, text)
    if filled != text:
        atomic_write_text(path, filled)
    return filled != text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of MATRIX.jsonl files")
    parser.add_argument("--documents", type=Path, nargs="*",
                        default=[REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    args = parser.parse_args()
    for records_file in sorted(args.results.glob("*.jsonl")):
        print(write_matrix(records_file))
    if (args.results / "tuned.json").is_file():
        print(write_tuned(args.results / "tuned.json"))
    if (args.results / "clinical.json").is_file():  # benchmarks/clinical.py
        atomic_write_text(args.results / "clinical.md",
                          clinical_tables(json.loads((args.results / "clinical.json").read_text())))
        print(args.results / "clinical.md")
    for audits_file in sorted(args.results.glob("*_audit.json")):  # benchmarks/audits.py
        table = audits_file.with_suffix(".md")
        atomic_write_text(table, audit_table(json.loads(audits_file.read_text())))
        print(table)
    for document in args.documents:
        if fill_document(document, args.results):
            print(f"updated {document}")


if __name__ == "__main__":
    main()
