"""The ``hkd`` command: ``hkd train NAME_OR_PATH [key=value ...]``."""

from __future__ import annotations

import argparse
import sys

from hkd.config import ConfigError, load_config
from hkd.data.records import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hkd", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train and evaluate an experiment")
    train.add_argument("experiment", help="experiments/NAME.yaml name, or a path to a YAML file")
    train.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_epochs=3")
    args = parser.parse_args(argv)
    if args.command == "train":
        from hkd.train import run_experiment

        try:
            cfg = load_config(args.experiment, args.overrides)
            run_dir = run_experiment(cfg, args.overrides)
        except (ConfigError, DataError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
