"""The hkd command: hkd train NAME_OR_PATH [key=value ...] and its siblings (hkd COMMAND --help).

Exit codes: 0 done; 1 nothing could be done (e.g. no input image could be read); 2 a configuration
or input error, printed as one message naming the file, key or row (argparse's own usage errors
are 2 as well); 3 training stopped on a non-finite loss."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hkd.errors import ConfigError, InputError

# Every heavy import (torch, Lightning, timm, MONAI) happens inside a command's handler, so that
# `hkd --help`, `hkd --version` and `hkd list` answer at once (tests/e2e/test_cli_speed.py).


def fail(message: object, code: int = 2) -> int:
    """Report an error without a traceback; return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code


EXPERIMENT = ("experiment", {"help": "experiments/NAME.yaml name, or a path to a YAML file"})
FINISHED_RUN = ("run_dir", {"help": "a finished run directory"})
# what the clinical report (hkd report, hkd test) breaks down and where it calls a class
REPORT_OPTIONS = [
    ("--by", {"default": None, "help": "metadata columns to break the results down by, e.g. sex,view"}),
    ("--threshold", {"action": "append", "default": [], "metavar": "CLASS=P",
                     "help": "call CLASS at probability >= P (repeatable)"}),
    ("--target-sensitivity", {"action": "append", "default": [], "metavar": "CLASS=S",
                              "help": "call CLASS at the threshold reaching sensitivity S on validation"}),
    ("--bootstrap", {"type": int, "default": 1000, "help": "resamples behind every 95 %% CI"})]

# command -> (help, [(argument, argparse options), ...])
ARGUMENTS: dict[str, tuple[str, list[tuple[str, dict]]]] = {
    "train": ("train and evaluate an experiment", [
        EXPERIMENT, ("overrides", {"nargs": "*", "help": "key=value overrides, e.g. trainer.max_epochs=3"})]),
    "config": ("print an experiment's resolved configuration and check it (no training)", [
        EXPERIMENT, ("overrides", {"nargs": "*", "help": "key=value overrides, as hkd train takes them"}),
        ("--splits", {"action": "store_true",
                      "help": "also read the data set and build its splits: images per split and class"})]),
    "list": ("list the experiments: the shipped ones and those of ./experiments or $HKD_EXPERIMENTS", []),
    "tune": ("tune keys with Optuna on the validation split (pruned, resumable)", [
        EXPERIMENT, ("overrides", {"nargs": "*", "help": "key=value overrides of every trial"}),
        ("--param", {"action": "append", "default": [], "dest": "params", "metavar": "KEY=SPACE",
                     "help": "a key and its space: log(a,b), float(a,b), int(a,b), choice(a,b,...)"}),
        ("--trials", {"type": int, "default": 20, "help": "finished trials the study should have"}),
        ("--study", {"default": None,
                     "help": "the study's folder: continue it, or join it from another worker"}),
        ("--storage", {"default": None,
                       "help": "sqlite (default: FOLDER/study.db), journal (FOLDER/study.journal, for a "
                               "shared file system) or a database URL"}),
        ("--heartbeat", {"type": int, "default": 60,
                         "help": "seconds between a trial's heartbeats; a killed worker's trial is rerun "
                                 "after two missed beats (database storages)"}),
        ("--metric", {"default": None, "help": "validation metric (default: checkpoint.monitor)"})]),
    "prior": ("train a prior generator and save it for other data sets (data.prior_generator=RUN)", [
        ("action", {"choices": ["train"], "help": "train: fit it on the training split's regions"}),
        EXPERIMENT, ("overrides", {"nargs": "*", "help": "key=value overrides, e.g. data.root=..."})]),
    "cv": ("run all K folds (data.folds=K) and aggregate them; a second call continues", [
        EXPERIMENT, ("overrides", {"nargs": "*", "help": "key=value overrides; must include data.folds=K"}),
        ("--seeds", {"type": int, "nargs": "+", "default": None,
                     "help": "repeat the cross-validation over these seeds (default: the config's)"})]),
    "repeat": ("train once per seed and aggregate (the papers' repeated runs; data.test_fraction=0)", [
        EXPERIMENT, ("overrides", {"nargs": "*", "help": "key=value overrides of every run"}),
        ("--seeds", {"type": int, "nargs": "+", "required": True, "help": "the seeds, e.g. 0 1 2 3 4"})]),
    "compare": ("markdown table of runs' test metrics", [
        ("runs", {"nargs": "+", "help": "run directories or folders holding them"}),
        ("--by", {"default": "name", "help": "summary key to group by (name, method)"}),
        ("--plot", {"default": "compare.png", "help": "where to write the PNG bar chart"}),
        ("--against", {"default": None,
                       "help": "a group to compare the others with, paired by seed (and fold)"}),
        ("--metric", {"default": "test.accuracy", "help": "metric of the paired comparison"}),
        ("--ceiling", {"default": None,
                       "help": "with --against: the group trained without the shortcut; prints the share of "
                               "the gap between the two each other group closes (and IMIL's edited shares)"}),
        ("--paired", {"action": "store_true",
                      "help": "two runs on the same test images: McNemar, paired-bootstrap differences"})]),
    "report": ("clinical evaluation report: per-class operating points, ROC/PR, calibration, subgroups", [
        FINISHED_RUN, ("--external", {"default": None, "help": "report RUN_DIR/external/NAME (an hkd test)"}),
        *REPORT_OPTIONS]),
    "review": ("serve the clinician's review page for IMIL rounds", [
        ("run_dir", {"help": "a run directory with imil/round_N/ folders"}),
        ("--port", {"type": int, "default": 8765}),
        ("--host", {"default": "127.0.0.1",
                    "help": "address to listen on; prefer SSH port forwarding to 0.0.0.0 (see README)"}),
        ("--token", {"default": None, "help": "a fixed access token (default: a new random one)"}),
        ("--no-token", {"action": "store_true", "help": "no token, loopback only (prints a warning)"}),
        ("--allow-host", {"action": "append", "default": [], "dest": "allow_hosts",
                          "help": "another host name the page may be reached under (repeatable)"})]),
    "predict": ("classify images with a trained run's model", [
        FINISHED_RUN,
        ("inputs", {"nargs": "+", "help": "image files (PNG, JPEG, 16-bit, DICOM), folders, labels.csv"}),
        ("--out", {"default": None, "help": "output folder (default RUN_DIR/predictions)"}),
        ("--cam", {"action": "store_true", "help": "also a Grad-CAM overlay per image"}),
        ("--batch-size", {"type": int, "default": 32})]),
    "test": ("evaluate a run's model on another data set (external validation)", [
        FINISHED_RUN,
        ("overrides", {"nargs": "*",
                       "help": "data.* keys of the test data, e.g. data.format=folder data.root=..."}),
        ("--name", {"default": None, "help": "name of the evaluation (default: the data format)"}),
        ("--split", {"default": "all", "help": "all (default), train, val or test"}),
        ("--map", {"action": "append", "default": [], "metavar": "THEIRS=OURS",
                   "help": "map a class name of the test data to one of the model's (repeatable)"}),
        *REPORT_OPTIONS]),
    "audit": ("shortcut audit: does the model's decision change when only pixels outside the regions do?", [
        FINISHED_RUN,
        ("overrides", {"nargs": "*",
                       "help": "data.* keys of the data to audit on (default: the run's own data)"}),
        ("--split", {"default": "test", "help": "test (default), val or train"}),
        ("--name", {"default": None, "help": "name of the audit (default: FORMAT-SPLIT)"}),
        ("--images", {"type": int, "default": 8, "help": "images in the changed-most figure"})]),
    "label-studio": ("an IMIL round as Label Studio tasks, and the completed export back as its marks", [
        ("action", {"choices": ["export", "import"],
                    "help": "export: the round's tasks and labeling config; import: a completed export"}),
        ("run_dir", {"help": "a run directory with imil/round_N/ folders"}),
        ("export_file", {"nargs": "?", "help": "import: Label Studio's JSON export of the round"}),
        ("--round", {"type": int, "default": None, "help": "the round (default: the latest)"}),
        ("--image-url", {"default": None, "help": "export: the URL prefix of the round's images in Label "
                                                  "Studio (default: local files under the run directory)"})]),
    "refit": ("refit a run's classifier head on counterfactual views (frozen backbone): a new run dir", [
        FINISHED_RUN, ("--out", {"default": None, "help": "the new run directory (default RUN_DIR-refit)"})]),
    "export": ("export a run's model (student only) for deployment", [
        FINISHED_RUN, ("--format", {"required": True, "choices": ("onnx", "torchscript")}),
        ("--out", {"default": None, "help": "output folder (default RUN_DIR/export)"})]),
}


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hkd")
    except PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(prog="hkd", description=__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
    main_parser.add_argument("--version", action="version", version=f"hkd {installed_version()}")
    commands = main_parser.add_subparsers(dest="command", required=True)
    for command, (help_text, arguments) in ARGUMENTS.items():
        sub = commands.add_parser(command, help=help_text)
        for name, options in arguments:
            sub.add_argument(name, **options)
    return main_parser


def run_review(args: argparse.Namespace) -> int:
    from hkd.review.app import serve

    serve(args.run_dir, args.host, args.port, args.token, args.no_token, args.allow_hosts)
    return 0


def report_options(args: argparse.Namespace) -> dict:
    """The report's ``--by``, ``--threshold`` and ``--target-sensitivity`` as ``ReportOptions`` fields."""
    from hkd.evaluation.operating_points import parse_assignments

    return {"by": tuple(c for c in (args.by or "").split(",") if c),
            "thresholds": parse_assignments(args.threshold, "--threshold"),
            "target_sensitivity": parse_assignments(args.target_sensitivity, "--target-sensitivity")}


def run_report(args: argparse.Namespace) -> int:
    from hkd.evaluation.report import ReportOptions, write_report

    run_dir = Path(args.run_dir)
    folder = run_dir / "external" / args.external if args.external else run_dir
    seed = json.loads((run_dir / "summary.json").read_text()).get("seed", 0) \
        if (run_dir / "summary.json").is_file() else 0
    options = ReportOptions(bootstrap=args.bootstrap, seed=int(seed), **report_options(args))
    print(write_report(folder, options, f"{run_dir.name}" + (f" on {args.external}" if args.external else ""),
                       validation_folder=run_dir))
    return 0


def run_paired(runs: list[str]) -> int:
    from hkd.evaluation.paired import paired_comparison, paired_table
    from hkd.evaluation.predictions import predictions_file, read_predictions

    if len(runs) != 2:
        return fail(f"--paired compares two runs; got {len(runs)}")
    a, b = (read_predictions(predictions_file(run, "test")) for run in runs)
    print(paired_table(paired_comparison(a, b), runs[0], runs[1]))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from hkd.reporting import compare as comparison

    if args.paired:
        return run_paired(args.runs)

    summaries = comparison.find_summaries(args.runs)
    if not summaries:
        return fail(f"no summary.json under {' '.join(args.runs)}")
    table = comparison.aggregate(summaries, args.by)
    print(comparison.markdown_table(table))
    if not any(summary.get("test") for summary in summaries):  # the train / valid protocol
        columns = comparison.VAL_COLUMNS
        print("\nNo test split: the best checkpoints' validation metrics\n\n"
              + comparison.markdown_table(comparison.aggregate(summaries, args.by, columns), columns=columns))
    if args.against:
        rows = comparison.paired_differences(summaries, args.against, args.by, args.metric)
        print("\n" + comparison.paired_table(rows, args.against, args.metric))
    if args.ceiling:
        if not args.against:
            return fail("--ceiling needs --against: the gap is measured from that group to the ceiling")
        from hkd.reporting.gap import edited_share_table, gap_closed, gap_table

        gaps = gap_closed(summaries, args.against, args.ceiling, args.by, args.metric)
        print("\n" + gap_table(gaps, args.against, args.ceiling, args.metric))
        edits = edited_share_table(summaries, args.by)
        print("\n" + edits if edits else "", end="\n" if edits else "")
    if args.plot:
        comparison.plot(table, Path(args.plot))
    from hkd.reporting.model_card import audits

    for summary in summaries:
        for audit in audits(summary["run_dir"]):
            control = f", shortcut flip rate {100 * audit['shortcut_flip_rate']:.1f} points" \
                if "shortcut_flip_rate" in audit else ""  # audits made before the control have none
            print(f"audit {summary['run_dir']} {audit['name']}: flip rate {100 * audit['flip_rate']:.1f} %"
                  f"{control} ({audit['with_region']} images)")
    return 0


def run_cv(args: argparse.Namespace) -> int:
    from hkd.run.cross_validation import run_folds, run_repeats

    if args.command == "repeat":
        report, table = run_repeats(args.experiment, args.overrides, args.seeds)
    else:
        report, table = run_folds(args.experiment, args.overrides, args.seeds)
    print(table)
    print(report)
    return 0


def run_config(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from hkd.config import load_config

    cfg = load_config(args.experiment, args.overrides)
    print(OmegaConf.to_yaml(cfg), end="")
    if args.splits:
        from hkd.run.dry_run import split_table

        print(split_table(cfg))
    return 0


def run_list(args: argparse.Namespace) -> int:
    from hkd.config.experiment_files import list_experiments

    experiments = list_experiments()
    width = max(len(experiment.name) for experiment in experiments)
    for experiment in experiments:
        where = "" if experiment.shipped else f"  [{experiment.path.parent}]"
        print(f"{experiment.name:<{width}}  {experiment.description}{where}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from hkd.config import load_config
    from hkd.run.experiment import NonFiniteLossError, run_experiment

    try:
        print(run_experiment(load_config(args.experiment, args.overrides), args.overrides))
    except NonFiniteLossError as error:
        return fail(error, code=3)
    return 0


def run_prior(args: argparse.Namespace) -> int:
    from hkd.config import load_config
    from hkd.run.saved_prior import train_saved_prior

    run_dir = train_saved_prior(load_config(args.experiment, args.overrides))
    print(run_dir)
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from hkd.run.tune import tune

    folder, best = tune(args.experiment, args.overrides, args.params, args.trials, args.study, args.metric,
                        args.storage, args.heartbeat)
    print(f"best {best['metric']} = {best['value']:.4f} (trial {best['trial']}): "
          f"{' '.join(best['overrides'])}")
    print(folder)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from hkd.inference.predict import predict_files

    out = Path(args.out) if args.out else Path(args.run_dir) / "predictions"
    path, n_classified, errors = predict_files(args.run_dir, args.inputs, out, args.cam, args.batch_size)
    if not n_classified:
        return fail(f"none of the {len(errors)} inputs could be read", code=1)
    print(f"{n_classified} images classified, {len(errors)} skipped: {path}")
    return 0


def run_test(args: argparse.Namespace) -> int:
    from hkd.inference.external import external_test

    class_map = dict(item.split("=", 1) for item in args.map if "=" in item)
    if len(class_map) != len(args.map):
        return fail("--map takes THEIRS=OURS")
    folder = external_test(args.run_dir, args.overrides, args.name, args.split, class_map, args.bootstrap,
                           report_options(args))
    print(folder / "summary.json")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from hkd.inference.audit import audit_model
    from hkd.reporting.model_card import AUDIT

    folder = audit_model(args.run_dir, args.overrides, args.split, args.name, args.images)
    report = json.loads((folder / AUDIT).read_text())
    print(report["verdict"])
    print(folder / "audit.md")
    return 0


def run_label_studio(args: argparse.Namespace) -> int:
    from hkd.imil.label_studio_round import export_round, import_round, round_folder

    folder = round_folder(Path(args.run_dir), args.round)
    if args.action == "export":
        tasks, config = export_round(folder, args.image_url)
        print(f"{tasks}\n{config}")
        return 0
    if not args.export_file:
        return fail("hkd label-studio import RUN_DIR EXPORT.json: the completed export is missing")
    print(import_round(folder, Path(args.export_file)))
    return 0


def run_refit(args: argparse.Namespace) -> int:
    from hkd.inference.refit import refit

    folder = refit(args.run_dir, args.out)
    choice = json.loads((folder / "summary.json").read_text())["refit"]
    print(f"strength C={choice['strength']}: fitted on {choice['train_views']} training swap views, chosen "
          f"on {choice['val_views']} validation swap views\n{folder}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from hkd.inference.export import export_model

    model, description = export_model(args.run_dir, args.format, args.out)
    print(f"{model}\n{description}")
    return 0


# command -> (handler, the errors it reports as a message rather than a traceback)
COMMANDS = {"train": (run_train, ()), "config": (run_config, ()), "list": (run_list, ()),
            "cv": (run_cv, (RuntimeError,)), "repeat": (run_cv, (RuntimeError,)),
            "compare": (run_compare, (ValueError,)), "review": (run_review, (ValueError, FileNotFoundError)),
            "predict": (run_predict, ()), "test": (run_test, ()), "export": (run_export, ()),
            "audit": (run_audit, ()), "report": (run_report, ()), "label-studio": (run_label_studio, ()),
            "prior": (run_prior, (ValueError, FileNotFoundError)), "tune": (run_tune, ()),
            "refit": (run_refit, ())}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler, expected = COMMANDS[args.command]
    try:
        return handler(args)
    except (ConfigError, InputError, *expected) as error:
        return fail(error)


if __name__ == "__main__":
    sys.exit(main())
