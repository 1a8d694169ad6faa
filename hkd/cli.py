"""The ``hkd`` command: ``hkd train NAME_OR_PATH [key=value ...]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hkd.config import load_config
from hkd.errors import ConfigError, InputError


def fail(message: object, code: int = 2) -> int:
    """Report an error without a traceback; return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hkd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train and evaluate an experiment")
    train.add_argument("experiment", help="experiments/NAME.yaml name, or a path to a YAML file")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_epochs=3")
    cv = commands.add_parser("cv", help="run all K folds (data.folds=K) and aggregate them")
    cv.add_argument("experiment", help="experiments/NAME.yaml name, or a path to a YAML file")
    cv.add_argument("overrides", nargs="*", help="key=value overrides; must include data.folds=K")
    compare = commands.add_parser("compare", help="markdown table of runs' test metrics")
    compare.add_argument("runs", nargs="+", help="run directories or folders holding them")
    compare.add_argument("--by", default="name", help="summary key to group by (name, method)")
    compare.add_argument("--plot", default="compare.png", help="where to write the PNG bar chart")
    compare.add_argument("--against", default=None,
                         help="a group to compare the others with, paired by seed (and fold)")
    compare.add_argument("--metric", default="test.accuracy", help="metric of the paired comparison")
    review = commands.add_parser("review", help="serve the clinician's review page for IMIL rounds")
    review.add_argument("run_dir", help="a run directory with imil/round_N/ folders")
    review.add_argument("--port", type=int, default=8765)
    review.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; prefer SSH port forwarding to 0.0.0.0 (see README)")
    review.add_argument("--token", default=None, help="a fixed access token (default: a new random one)")
    review.add_argument("--no-token", action="store_true", help="no token, loopback only (prints a warning)")
    review.add_argument("--allow-host", action="append", default=[], dest="allow_hosts",
                        help="another host name the page may be reached under (repeatable)")
    args = parser.parse_args(argv)
    if args.command == "review":
        from hkd.review.app import serve

        try:
            serve(args.run_dir, args.host, args.port, args.token, args.no_token, args.allow_hosts)
        except (ValueError, FileNotFoundError) as error:
            return fail(error)
        return 0
    if args.command == "compare":
        from hkd.reporting import compare as comparison

        summaries = comparison.find_summaries(args.runs)
        if not summaries:
            return fail(f"no summary.json under {' '.join(args.runs)}")
        table = comparison.aggregate(summaries, args.by)
        print(comparison.markdown_table(table))
        if args.against:
            try:
                rows = comparison.paired_differences(summaries, args.against, args.by, args.metric)
            except ValueError as error:
                return fail(error)
            print("\n" + comparison.paired_table(rows, args.against, args.metric))
        if args.plot:
            comparison.plot(table, Path(args.plot))
        return 0
    if args.command == "cv":
        from hkd.run.cross_validation import run_folds

        try:
            report, table = run_folds(args.experiment, args.overrides)
        except (ConfigError, InputError, RuntimeError) as error:
            return fail(error)
        print(table)
        print(report)
        return 0
    if args.command == "train":
        from hkd.run.experiment import NonFiniteLossError, run_experiment

        try:
            cfg = load_config(args.experiment, args.overrides)
            run_dir = run_experiment(cfg, args.overrides)
        except (ConfigError, InputError) as error:
            return fail(error)
        except NonFiniteLossError as error:
            return fail(error, code=3)
        print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
