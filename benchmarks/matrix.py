"""Run experiments x seeds (each in its own process), then print the comparison table and save
it under benchmarks/results/. Resumable: runs in the records or in a finished run directory are
skipped, a run killed after its first checkpoint continues from it, and every finished run's
record is appended to
``benchmarks/results/MATRIX.jsonl`` (metrics, config hash, git commit, date, machine), from which
``make results`` regenerates the tables without training.

    python -m benchmarks.matrix methods        # the HKD issue's method comparison
    python -m benchmarks.matrix imil           # IMIL budgets, start epochs, augmentations
    python -m benchmarks.matrix kermany        # real pediatric X-rays, lung prior from covid-chestxray
    python -m benchmarks.matrix kermany_shortcut --seeds 0   # the planted shortcut on them
    python -m benchmarks.matrix covid_cv --seeds 0  # covid-chestxray, 5 folds per seed
    python -m benchmarks.tune && python -m benchmarks.matrix methods_tuned --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from omegaconf import OmegaConf

from benchmarks.defaults_history import (
    BATCHES_OF_16,
    GENERATOR_BEFORE_32,
    behaviour_before_keys,
    overrides_then,
    same_overrides,
)
from benchmarks.results import write_matrix
from hkd.atomic import append_json_line, atomic_write_json, atomic_write_text
from hkd.run.resumable import train_resumable
from hkd.run.run_dir import RUN_ID_ENV

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "benchmarks" / "results"  # MATRIX.jsonl, the records every table is made from
SHARED = REPO.parent / "shared" / "datasets"

# Runs that matrices use as inputs ("{name}" in their overrides): hkd prior train EXPERIMENT ...
PREREQUISITES: dict[str, tuple[str, list[str]]] = {
    "lung_prior": ("covid_cxr_lung_prior", [f"data.root={SHARED / 'covid-chestxray'}"]),
}
KERMANY = [f"data.root={SHARED / 'kermany-pediatric-cxr'}", "data.prior_generator={lung_prior}"]
PREREQUISITE_KEYS = ("data.prior_generator",)  # keys whose value is a prerequisite's run
SHORTCUT = ["data.shortcut.kind=text", "data.shortcut.bias=0.95"]  # PORTABLE / SUPINE / ERECT
KERMANY_ROWS = {"baseline": ("kermany_baseline", []), "hkd (lung prior)": ("kermany_hkd", []),
                "imil": ("kermany_imil", []), "hkd (lung prior) + imil": ("kermany_hkd_imil", [])}
PROPAGATE_INPAINT = ["imil.propagate=true", "imil.fill=inpaint"]

# HKD with finding boxes where it works (issue #34's regression benchmark): one fixed data set of
# 1,000 images at 96 px (600 train, 150 val with the tag as in train, 250 test with a random tag),
# no augmentation, finding boxes as the prior; the seed varies only the initialisation and the data
# order. `benchmarks/at_commit.py` runs the same rows with the code of another commit.
BOXES = ["data.synthetic.seed=2026", "data.synthetic.n_test=250", "data.image_size=96",
         "augment.policy=none"]

class Row(NamedTuple):
    """One row of a matrix: an experiment with overrides, trained for every seed."""

    experiment: str
    overrides: list[str]
    ceiling: bool = False  # the shortcut-free run; the report measures the gap to it


def ceiling(experiment: str, overrides: list[str]) -> Row:
    """The matrix's ceiling row (its records carry ``"ceiling": true``)."""
    return Row(experiment, overrides, ceiling=True)


# label -> (experiment, overrides)
METHODS = {method: (f"synthetic_{method}", []) for method in
           ("baseline", "hkd", "rrr", "gradmask", "actdiff", "cam_align")}


def shortcut_rows(shortcut: list[str]) -> dict[str, tuple[str, list[str]]]:
    """The Kermany methods with a planted shortcut, and the ceiling trained without it."""
    return {
        "baseline": ("kermany_baseline", [*KERMANY, *shortcut]),
        "hkd (lung prior)": ("kermany_hkd", [*KERMANY, *shortcut]),
        "imil (propagate, inpaint)": ("kermany_imil", [*KERMANY, *shortcut, *PROPAGATE_INPAINT]),
        "hkd (lung prior) + imil (propagate, inpaint)": ("kermany_hkd_imil",
                                                          [*KERMANY, *shortcut, *PROPAGATE_INPAINT]),
        "shortcut-free (ceiling)": ceiling("kermany_baseline",
                                           [*KERMANY, *shortcut, "data.shortcut.bias=null"]),
    }


# Counterfactual validation (issue #27): the validation split carries the shortcut like training, and
# the checkpoint is chosen by the counterfactual score (the worse of clean and swapped balanced
# accuracy on validation) instead of validation accuracy; IMIL also mines the swap's flips.
CF_SELECTION = ["counterfactual.enabled=true", "checkpoint.monitor=val/cf_score"]


def counterfactual_rows(shortcut: list[str], with_mining: bool = True) -> dict[str, Row | tuple]:
    """The Kermany methods with a planted shortcut in train and validation, selected by the
    counterfactual score, beside the baseline as selected today and the shortcut-free ceiling;
    ``with_mining`` adds IMIL alone and HKD + IMIL mining the swap's flips."""
    base = [*KERMANY, *shortcut]
    rows = {
        "baseline": ("kermany_baseline", base),
        "baseline, cf selection": ("kermany_baseline", [*base, *CF_SELECTION]),
        "hkd (lung prior), cf selection": ("kermany_hkd", [*base, *CF_SELECTION]),
        "imil (propagate, inpaint), cf selection": ("kermany_imil",
                                                    [*base, *PROPAGATE_INPAINT, *CF_SELECTION]),
        "hkd (lung prior) + imil (propagate, inpaint), cf selection": (
            "kermany_hkd_imil", [*base, *PROPAGATE_INPAINT, *CF_SELECTION]),
        "hkd (lung prior) + imil (propagate, inpaint, mine=flips), cf selection": (
            "kermany_hkd_imil", [*base, *PROPAGATE_INPAINT, "imil.mine=flips", *CF_SELECTION]),
        "shortcut-free (ceiling)": ceiling("kermany_baseline", [*base, "data.shortcut.bias=null"]),
    }
    mining = ("imil (propagate, inpaint), cf selection",
              "hkd (lung prior) + imil (propagate, inpaint, mine=flips), cf selection")
    return {label: row for label, row in rows.items() if with_mining or label not in mining}


# Clean Kermany (no shortcut): what selecting by the counterfactual score costs where there is
# nothing to catch, beside the same methods selected by validation accuracy.
KERMANY_CF = {
    "baseline": ("kermany_baseline", KERMANY),
    "baseline, cf selection": ("kermany_baseline", [*KERMANY, *CF_SELECTION]),
    "hkd (lung prior)": ("kermany_hkd", KERMANY),
    "hkd (lung prior), cf selection": ("kermany_hkd", [*KERMANY, *CF_SELECTION]),
}
CORNER_TAG = ["data.shortcut.kind=corner_tag", "data.shortcut.bias=0.95"]  # the corner names the class
# cheaper propagation (issue #32): the generator as configured before it stopped once it reproduces
# the marks (each row that ran with it names it), and as configured since
OLD_GENERATOR = [*GENERATOR_BEFORE_32, BATCHES_OF_16]
STOPPING_GENERATOR = ["imil.propagate_features=[8,8,16,32,64,8]", "imil.propagate_lr=0.003",
                      "imil.propagate_updates=200", "imil.propagate_stop_recall=0.99"]
SMALL_BATCHES = "imil.propagate_batch_size=8"
HALF_SIZE = "imil.propagate_scale=0.5"
WARM_START = ["imil.propagate_warm_start=true", "imil.propagate_updates=30"]
# HKD's variant on Kermany (issue #31): the distillation weight never decays to 0
KERMANY_EPOCHS = 6  # the kermany experiments' epochs (the student's, and HKD's teacher's)
KD_ALL_EPOCHS = [f"hkd.kd_epochs={KERMANY_EPOCHS + 1}"]
KERMANY_TRAIN_IMAGES = 4400  # about the training split of every seed at all images (records' splits)


def update_scale(size: int | None) -> int:
    """n: how many times the kermany epochs ``size`` training images train for about the optimiser
    updates of all of them (1 at all images)."""
    return max(1, round(KERMANY_TRAIN_IMAGES / size)) if size else 1


def same_updates(size: int | None) -> list[str]:
    """Overrides that give ``size`` training images about the optimiser updates of all of them: the
    kermany epochs (student and teacher) times n, validated every n epochs (so six times, the last
    epoch included, as at full size); nothing at all images."""
    n = update_scale(size)
    if n == 1:
        return []
    return [f"trainer.max_epochs={KERMANY_EPOCHS * n}", f"hkd.teacher_epochs={KERMANY_EPOCHS * n}",
            f"trainer.check_val_every_n_epoch={n}"]


def learning_curve_rows(sizes: tuple[int | None, ...]) -> dict[str, tuple[str, list[str]]]:
    """PneuKnowNet's claim where it lives, small data (issue #31): clean Kermany with about N
    training images (whole patients, each class its share; the same validation and test split per
    seed), the baseline, HKD (lung prior) and HKD distilling over every epoch. Every size gets about
    the updates of the full set (``same_updates``): with the epochs fixed, 250 images would train
    for 24 updates and stop before learning anything."""
    rows = {}
    for size in sizes:
        subset = [f"data.train_size={size}", *same_updates(size)] if size else []
        kd_all_epochs = [f"hkd.kd_epochs={KERMANY_EPOCHS * update_scale(size) + 1}"]  # never reaches 0
        name = f"{size} images" if size else "all images"
        rows |= {f"baseline, {name}": ("kermany_baseline", [*KERMANY, *subset]),
                 f"hkd (lung prior), {name}": ("kermany_hkd", [*KERMANY, *subset]),
                 f"hkd (lung prior, kd all epochs), {name}": ("kermany_hkd",
                                                              [*KERMANY, *subset, *kd_all_epochs])}
    return rows


# The same on the synthetic benchmark (its validation split carries the tag like training), with the
# lungs as every row's region: exact outlines, so a swap keeps every finding and moves the tag.
SYNTHETIC_LUNG = ["data.relevant_categories=[lung]"]
SYNTHETIC_CF = {
    "baseline": ("synthetic_baseline", SYNTHETIC_LUNG),
    "baseline, cf selection": ("synthetic_baseline", [*SYNTHETIC_LUNG, *CF_SELECTION]),
    "hkd (lung), cf selection": ("synthetic_hkd_lung", CF_SELECTION),
    "imil (propagate, inpaint), cf selection": ("synthetic_imil_propagate", [*SYNTHETIC_LUNG, *CF_SELECTION]),
    "imil (propagate, inpaint, mine=flips), cf selection": (
        "synthetic_imil_propagate", [*SYNTHETIC_LUNG, "imil.mine=flips", *CF_SELECTION]),
    "hkd (lung) + imil (propagate, inpaint)": ("synthetic_hkd_imil", [*SYNTHETIC_LUNG, *PROPAGATE_INPAINT]),
    "hkd (lung) + imil (propagate, inpaint), cf selection": (
        "synthetic_hkd_imil", [*SYNTHETIC_LUNG, *PROPAGATE_INPAINT, *CF_SELECTION]),
    "hkd (lung) + imil (propagate, inpaint, mine=flips), cf selection": (
        "synthetic_hkd_imil", [*SYNTHETIC_LUNG, *PROPAGATE_INPAINT, "imil.mine=flips", *CF_SELECTION]),
    "shortcut-free (ceiling)": ceiling("synthetic_clean", SYNTHETIC_LUNG),
}


MATRICES: dict[str, dict[str, Row | tuple[str, list[str]]]] = {
    "calibration": {
        "baseline (shortcut)": ("synthetic_baseline", []),
        "shortcut-free (ceiling)": ceiling("synthetic_clean", []),
    },
    # `hkd` is the published schedule; the variant fills ROIs with the mean and distils every epoch
    "methods": {**METHODS, "hkd (mean fill, kd all epochs)": ("synthetic_hkd_full_kd", []),
                "shortcut-free (ceiling)": ceiling("synthetic_clean", [])},
    # The same comparison with the lungs as every method's prior (the anatomical prior real data sets
    # provide): the finding boxes' shape names the class, so a teacher on them needs no image.
    "methods_lung": {label: Row(*row)._replace(overrides=[*row[1], "data.relevant_categories=[lung]"])
                     for label, row in
                     {**METHODS, "shortcut-free (ceiling)": ceiling("synthetic_clean", [])}.items()},
    # baseline and HKD (lungs) without the random affine; every row measured against the lungs
    "no_augmentation": {
        "baseline, no augmentation": ("synthetic_baseline", ["augment.policy=none",
                                                             "data.relevant_categories=[lung]"]),
        "hkd (lung), no augmentation": ("synthetic_hkd_lung", ["augment.policy=none"]),
        "shortcut-free (ceiling), no augmentation": ceiling("synthetic_clean", ["augment.policy=none",
                                                                         "data.relevant_categories=[lung]"]),
    },
    # the teacher sees the annotations of 10 % of the training set (+ predicted lungs for the rest),
    # between no annotations (the baseline) and all of them
    "prior": {
        "baseline (no annotations)": ("synthetic_baseline", ["data.relevant_categories=[lung]"]),
        "hkd (lung) roi_fraction=1.0": ("synthetic_hkd_lung", []),
        "hkd roi_fraction=0.1": ("synthetic_hkd", ["hkd.roi_fraction=0.1"]),
        "hkd roi_fraction=0.1 + predicted prior": ("synthetic_hkd",
                                                   ["hkd.roi_fraction=0.1", "hkd.prior=predicted"]),
        "hkd (lung) roi_fraction=0.1": ("synthetic_hkd_lung", ["hkd.roi_fraction=0.1"]),
        "hkd (lung) roi_fraction=0.1 + predicted prior": ("synthetic_hkd_lung",
                                                          ["hkd.roi_fraction=0.1", "hkd.prior=predicted"]),
        "shortcut-free (ceiling)": ceiling("synthetic_clean", ["data.relevant_categories=[lung]"]),
    },
    "hkd_boxes": {"baseline": ("synthetic_baseline", BOXES), "hkd (finding boxes)": ("synthetic_hkd", BOXES),
                  "shortcut-free (ceiling)": ceiling("synthetic_clean", BOXES)},
    "kermany": {label: (experiment, [*KERMANY, *overrides])
                for label, (experiment, overrides) in KERMANY_ROWS.items()},
    # the shortcut in train and validation: model selection sees the shortcut too
    "kermany_shortcut": shortcut_rows(SHORTCUT),
    # the same with a shortcut-free validation split (random label) for model selection
    "kermany_shortcut_fair": shortcut_rows([*SHORTCUT, "data.shortcut.val=random"]),
    # the shortcut in validation too, the checkpoint chosen by the counterfactual score (issue #27)
    "kermany_shortcut_cf": counterfactual_rows(SHORTCUT),
    "synthetic_cf": SYNTHETIC_CF,
    "kermany_cf": KERMANY_CF,
    # python -m benchmarks.matrix kermany_learning_curve --seeds 0 1 2 3 4
    "kermany_learning_curve": learning_curve_rows((250, 500, 1000, None)),
    # HKD distilling over every epoch on the clean task and the fair-split shortcut task (issue #31)
    "kermany_kd_all_epochs": {
        "hkd (lung prior), kd all epochs": ("kermany_hkd", [*KERMANY, *KD_ALL_EPOCHS]),
        "hkd (lung prior), kd all epochs, shortcut (fair split)": (
            "kermany_hkd", [*KERMANY, *SHORTCUT, "data.shortcut.val=random", *KD_ALL_EPOCHS])},
    # the other planted shortcut: a bright square whose corner names the class
    "kermany_corner_tag_cf": counterfactual_rows(CORNER_TAG, with_mining=False),
    # covid-chestxray, patient-grouped 5-fold CV (FOLDS), the lungs from boxes, V7 outlines and masks
    "covid_cv": {label: (experiment, [f"data.root={SHARED / 'covid-chestxray'}"]) for label, experiment in
                 (("baseline", "covid_cxr_baseline"), ("hkd (lungs)", "covid_cxr_hkd"),
                  ("imil", "covid_cxr_imil"), ("hkd (lungs) + imil", "covid_cxr_hkd_imil"))},
    "imil": {
        "baseline": ("synthetic_baseline", []),
        "baseline + randaugment": ("synthetic_baseline", ["augment.policy=randaugment"]),
        "baseline + trivialaugment": ("synthetic_baseline", ["augment.policy=trivialaugment"]),
        "baseline + mixup": ("synthetic_baseline", ["augment.mixup=0.2"]),
        "baseline + cutmix": ("synthetic_baseline", ["augment.cutmix=1.0"]),
        "baseline, no augmentation": ("synthetic_baseline", ["augment.policy=none"]),
        **{f"imil b={b} start={start}": ("synthetic_imil", [f"imil.budget={b}", f"imil.start_epoch={start}"])
           for start in (1, 5) for b in (0.01, 0.04, 0.1, 1.0)},
        "imil b=0.04 + propagate": ("synthetic_imil", ["imil.propagate=true"]),
        # the inpaint fill leaves no rectangle at the (class-naming) tag position
        **{f"imil b={b} start=1, inpaint": ("synthetic_imil", [f"imil.budget={b}", "imil.fill=inpaint"])
           for b in (0.04, 1.0)},
        "imil b=0.04 + propagate, inpaint": ("synthetic_imil_propagate", []),
        "imil b=0.04 + propagate, inpaint, margin=1": ("synthetic_imil_propagate", ["imil.margin=1"]),
        "hkd + imil b=0.04": ("synthetic_hkd_imil", []),
        "hkd (lung prior) + imil b=0.04": ("synthetic_hkd_imil", ["data.relevant_categories=[lung]"]),
        "hkd (lung prior) + imil b=0.04 + propagate, inpaint": (
            "synthetic_hkd_imil", ["data.relevant_categories=[lung]", "imil.propagate=true",
                                   "imil.fill=inpaint"]),
        "shortcut-free (ceiling)": ceiling("synthetic_clean", []),
    },
    # issue #32: cheaper propagation, each variant against the row it must match (gap share within
    # the 10-seed spread of "imil b=0.04 + propagate, inpaint" in the imil matrix):
    # python -m benchmarks.matrix imil_propagation --seeds 0 1 2 3 4 (the configured row, baseline and
    # ceiling for seeds 5-9 with --only)
    "imil_propagation": {
        "baseline": ("synthetic_baseline", []),
        "imil b=0.04 + propagate, inpaint": ("synthetic_imil_propagate", OLD_GENERATOR),
        "... generator at half size": ("synthetic_imil_propagate", [*OLD_GENERATOR, HALF_SIZE]),
        "... warm-started, 30 updates a round": ("synthetic_imil_propagate", [*OLD_GENERATOR, *WARM_START]),
        "... both": ("synthetic_imil_propagate", [*OLD_GENERATOR, HALF_SIZE, *WARM_START]),
        "... 60 updates": ("synthetic_imil_propagate", [*OLD_GENERATOR, "imil.propagate_updates=60"]),
        "... narrower, stops once it reproduces the marks": ("synthetic_imil_propagate",
                                                             [*STOPPING_GENERATOR, BATCHES_OF_16]),
        "... narrower, stops once it reproduces the marks, 8 a batch": ("synthetic_imil_propagate",
                                                                        [*STOPPING_GENERATOR, SMALL_BATCHES]),
        "shortcut-free (ceiling)": ceiling("synthetic_clean", []),
    },
}


def tuned_methods() -> dict[str, tuple[str, list[str]]]:
    """The methods at the settings ``benchmarks/tune.py`` found (tuned.json), every run selected
    on the shortcut-free validation split, beside the baseline and the ceiling."""
    from benchmarks.tune import SHORTCUT_FREE_VAL, SPACES, tuned_overrides

    return {"baseline": ("synthetic_baseline", SHORTCUT_FREE_VAL),
            **{f"{method} (tuned)": (experiment, [*SHORTCUT_FREE_VAL, *tuned_overrides(method)])
               for method, (experiment, _) in SPACES.items()},
            "shortcut-free (ceiling)": ceiling("synthetic_clean", SHORTCUT_FREE_VAL)}


# matrices whose rows are known only after another step (read when the matrix runs)
LATER_MATRICES = {"methods_tuned": tuned_methods}  # python -m benchmarks.tune first


def matrix_rows(name: str) -> dict[str, Row]:
    rows = LATER_MATRICES[name]() if name in LATER_MATRICES else MATRICES[name]
    return {label: Row(*row) for label, row in rows.items()}


FOLDS = {"covid_cv": 5}  # matrices cross-validated: every seed runs every fold


def same_run(run_dir: Path, experiment: str, overrides: list[str], strict_code: bool = False) -> bool:
    """Whether a run directory holds this row's run: the same config (keys added to the project
    since count as the same at their default, or at their value before a change of defaults
    (``benchmarks/defaults_history.py``) when they came with one; ``logging.*``,
    which only changes what is shown and logged, is left out) and, with ``strict_code``, the same
    code version."""
    from hkd.config import load_config, to_dotlist
    from hkd.run.run_dir import code_version

    summary = run_dir / "summary.json"
    if strict_code and json.loads(summary.read_text()).get("git_commit") != code_version():
        return False
    saved = OmegaConf.load(run_dir / "config.yaml")
    wanted = load_config(experiment, [*overrides, f"seed={saved.seed}", f"name={saved.name}",
                                      f"output_dir={saved.output_dir}", "logging.wandb=disabled",
                                      "logging.progress_bar=false"])
    saved_keys, wanted_keys = to_dotlist(saved), to_dotlist(wanted)
    # a key added to the project after the run counts as the same when left at its default, or at
    # the value that reproduces what the code did before it, when its default changed that
    defaults = {**to_dotlist(OmegaConf.load(REPO / "experiments" / "base.yaml")), **behaviour_before_keys()}
    return all(saved_keys.get(key, defaults.get(key)) == wanted_keys.get(key)
               for key in {*saved_keys, *wanted_keys} if not key.startswith("logging."))


def slug(label: str) -> str:
    return label.replace(" ", "_").replace("=", "").replace("+", "plus").replace("(", "").replace(")", "") \
        .replace(",", "")


def quiet(output_dir: Path, name: str, seed: int) -> list[str]:
    return [f"seed={seed}", f"output_dir={output_dir}", f"name={name}", "logging.wandb=disabled",
            "logging.progress_bar=false"]


def hkd_command(arguments: list[str], run_id: str) -> str:
    """Run ``python -m hkd ARGUMENTS`` with this run id; the run directory it printed."""
    env = {**os.environ, RUN_ID_ENV: run_id}
    result = subprocess.run([sys.executable, "-m", "hkd", *arguments], cwd=REPO, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout.strip().splitlines()[-1]


def prerequisite(name: str) -> Path:
    """The run a matrix uses as an input (e.g. the saved lung generator): the committed one in
    ``benchmarks/artifacts/NAME`` (so every session's runs share it), else trained once."""
    committed = REPO / "benchmarks" / "artifacts" / name
    if (committed / "summary.json").is_file():
        return committed
    experiment, overrides = PREREQUISITES[name]
    folder = REPO / "runs" / "bench" / "prerequisites" / name / "seed0"
    if not (folder / "summary.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"training the prerequisite {name} ({experiment})", flush=True)
        hkd_command(["prior", "train", experiment, *overrides, *quiet(folder.parents[1], name, 0)], "seed0")
    return folder


def portable(overrides: list[str]) -> list[str]:
    """Overrides with paths under the folder around the clone (``../shared``, ``../main``) relative,
    as records keep them whichever machine made them."""
    return [o.replace(str(REPO.parent), "..") for o in overrides]


def comparable(overrides: list[str]) -> list[str]:
    """Overrides as records compare them: paths under the shared folder relative, a prerequisite's
    run, wherever the clone that ran it kept it (``runs/bench/prerequisites/NAME/seed0``,
    ``benchmarks/artifacts/NAME``), as ``{NAME}``, and no ``data.fold`` (a record's ``fold``
    says it, some older records' overrides do not)."""
    def named(override: str) -> str:
        key, value = override.split("=", 1)
        if key not in PREREQUISITE_KEYS:
            return override
        found = [name for name in PREREQUISITES if name in Path(value).parts]
        return f"{key}={{{found[0]}}}" if found else override

    return [named(o) for o in portable(overrides) if not o.startswith("data.fold=")]


def resolve(overrides: list[str]) -> list[str]:
    """Overrides with ``{prerequisite}`` replaced by that run's directory."""
    resolved = []
    for override in overrides:
        for name in PREREQUISITES:
            if "{" + name + "}" in override:
                override = override.replace("{" + name + "}", str(prerequisite(name)))
        resolved.append(override)
    return resolved


def record_of(matrix: str, label: str, experiment: str, overrides: list[str], run_dir: Path,
              is_ceiling: bool = False) -> dict:
    """What the results files keep of a finished run: its metrics and where they came from."""
    summary = json.loads((run_dir / "summary.json").read_text())
    kept = ("seed", "fold", "test", "explanations", "val", "test_ci", "imil_edited",
            "imil_clinician_edits", "skipped_batches", "duration_s", "git_commit", "splits",
            "prior_generator")
    best = re.search(r"epoch=(\d+)", Path(summary.get("best_checkpoint") or "").name)
    rounds = [{"round": r["round"], "epoch": r["epoch"], "n_selected": r.get("n_selected"),
               "n_edited": len(r.get("edited", [])), "n_propagated": len(r.get("propagated", []))}
              for r in summary.get("imil_rounds", [])]
    return {"matrix": matrix, "name": label, "experiment": experiment,
            **({"ceiling": True} if is_ceiling else {}),
            **{key: summary.get(key) for key in kept},
            "best_epoch": int(best.group(1)) if best else None, "imil_rounds": rounds or None,
            "teacher": {key: summary["teacher"].get(key) for key in ("epochs", "test_on_roi")}
            if "teacher" in summary else None,  # HKD's stage 1 on ROI images
            **provenance(overrides, run_dir / "config.yaml", (run_dir / "summary.json").stat().st_mtime)}


def provenance(overrides: list[str], config_file: Path, made: float) -> dict:
    """Where a record came from: the overrides (paths under the shared folder made relative), the
    run's config hash, when (a timestamp) and on which machine."""
    return {"overrides": portable(overrides),
            "config_sha256": hashlib.sha256(config_file.read_bytes()).hexdigest()[:16],
            "date": datetime.fromtimestamp(made, timezone.utc).isoformat(timespec="seconds"),
            "machine": machine()}


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch {torch.__version__}"


def recorded_run(records_file: Path, label: str, experiment: str, overrides: list[str], seed: int,
                 fold: int | None, strict_code: bool = False) -> dict | None:
    """This row's run for this seed (and fold) as the records hold it, made with the same experiment
    and overrides (a prerequisite by its name; with ``strict_code``, by this code version): a
    recorded run is not trained again, even when its run directory is gone (delete its record to
    re-run it). A record made before a change of defaults that touches this row's runs is read
    with the old defaults (``benchmarks/defaults_history.py``): it stands for the row only if the
    row asks for them. The matrix's own records are looked at first, then every other matrix's
    beside them (a run of the same config under another label, as ``finished_run`` finds run
    directories): such a record comes back under this matrix and label, naming where it came from
    (``reused_from``)."""
    from hkd.config import load_config
    from hkd.run.run_dir import code_version

    wanted = comparable(overrides)
    row_config = load_config(experiment, overrides)
    others = sorted(path for path in records_file.parent.glob("*.jsonl") if path != records_file)
    for path in [records_file, *others]:
        if not path.is_file():
            continue
        for line in reversed(path.read_text().splitlines()):
            record = json.loads(line)
            if (record["seed"], record.get("fold"), record["experiment"]) != (seed, fold, experiment) \
                    or (path == records_file and record["name"] != label) \
                    or not same_overrides(comparable(overrides_then(record, row_config)), wanted):
                continue
            if strict_code and record.get("git_commit") != code_version():
                break  # the latest of this config in this file is not this code's
            if path == records_file:
                return record
            return {**record, "matrix": records_file.stem, "name": label,
                    "reused_from": f"{path.stem}: {record['name']}"}
    return None


def known_run(records_file: Path, label: str, row: Row, overrides: list[str], seed: int, fold: int | None,
              strict_code: bool) -> dict | None:
    """``recorded_run`` for a matrix's row; another matrix's record is appended to this matrix's
    records, marked as this row's ceiling or not."""
    record = recorded_run(records_file, label, row.experiment, overrides, seed, fold, strict_code)
    if record and "reused_from" in record:
        record = {key: value for key, value in record.items() if key != "ceiling"}
        record |= {"ceiling": True} if row.ceiling else {}
        add_record(records_file, record)
    return record


def finished_run(out: Path, name: str, run_id: str, experiment: str, overrides: list[str],
                 strict_code: bool) -> Path | None:
    """A finished run of this config in any matrix under any label (the same label looked at
    first), so a row shared by several matrices trains once."""
    same_label = [folder / name / run_id for folder in [out, *sorted(out.parent.iterdir())]]
    others = sorted(out.parent.glob(f"*/*/{run_id}"))
    for candidate in dict.fromkeys([*same_label, *others]):
        if (candidate / "summary.json").is_file() and same_run(candidate, experiment, overrides, strict_code):
            return candidate
    return None


def run(label: str, row: Row, seed: int, out: Path, strict_code: bool = False,
        fold: int | None = None) -> Path | None:
    """The row's run for this seed (and fold): one finished earlier with its config, else trained
    (an unfinished one of the same config continues from its last checkpoint)."""
    run_id = f"seed{seed}" if fold is None else f"seed{seed}-fold{fold}"
    overrides = row.overrides if fold is None else [*row.overrides, f"data.fold={fold}"]
    existing = finished_run(out, slug(label), run_id, row.experiment, overrides, strict_code)
    if existing:
        return existing
    run_dir = out / slug(label) / run_id
    if (run_dir / "config.yaml").is_file() and not same_run(run_dir, row.experiment, overrides):
        shutil.rmtree(run_dir)  # begun with another config: start again
    try:
        train_resumable(row.experiment, [*overrides, *quiet(out, slug(label), seed)], run_dir,
                        f"{label} {run_id}")
    except RuntimeError as error:
        print(f"FAILED {label} {run_id}:\n{error}", file=sys.stderr)
        return None
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["name"] = label
    atomic_write_json(run_dir / "summary.json", summary)
    print(f"{label} {run_id}: test acc {summary['test']['accuracy']:.3f} "
          f"({summary['duration_s']:.0f} s)", flush=True)
    return run_dir


def rerecord(matrix: str, rows: list[tuple[str, Row]], seeds: list[int], folds: list, out: Path,
             records_file: Path) -> None:
    """The records of every finished run of the matrix, made anew from the run directories."""
    lines = []
    for seed in seeds:
        for fold in folds:
            for label, row in rows:
                run_id = f"seed{seed}" if fold is None else f"seed{seed}-fold{fold}"
                run_dir = out / slug(label) / run_id
                if not (run_dir / "summary.json").is_file():  # trained for another matrix or label
                    with_fold = row.overrides if fold is None else [*row.overrides, f"data.fold={fold}"]
                    run_dir = finished_run(out, slug(label), run_id, row.experiment, with_fold, False)
                if run_dir:
                    saved = OmegaConf.load(run_dir / "config.yaml")  # a prerequisite as this run had it
                    keys = [o.split("=", 1)[0] for o in row.overrides]
                    used = [f"{key}={OmegaConf.select(saved, key)}" if key in PREREQUISITE_KEYS else o
                            for key, o in zip(keys, row.overrides)]
                    folded = used if fold is None else [*used, f"data.fold={fold}"]
                    record = record_of(matrix, label, row.experiment, folded, run_dir, row.ceiling)
                    lines.append(json.dumps(record) + "\n")
    if not lines:
        raise SystemExit(f"no finished runs of {matrix} under {out}: nothing to record")
    atomic_write_text(records_file, "".join(lines))


def add_record(records_file: Path, record: dict) -> None:
    """Append the run's record unless the file has it already (same label, seed and config)."""
    if records_file.is_file():
        for line in records_file.read_text().splitlines():
            old = json.loads(line)
            if (old["name"], old["seed"], old["config_sha256"]) == \
                    (record["name"], record["seed"], record["config_sha256"]):
                return
    append_json_line(records_file, record)


def save_records(path: Path, records: list[dict], force: bool = False) -> bool:
    """Write these records (a ``.jsonl``) and their tables beside them, unless the file there holds
    more runs (a partial matrix never replaces a fuller one); True when written."""
    if path.is_file() and not force and len(path.read_text().splitlines()) > len(records):
        return False
    atomic_write_text(path, "".join(json.dumps(record) + "\n" for record in records))
    write_matrix(path)
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("matrix", choices=sorted({*MATRICES, *LATER_MATRICES}))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=None, help="labels to run (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write only this invocation's runs' records to this .jsonl and their table "
                             "beside it (default: every recorded run's, benchmarks/results/MATRIX.jsonl)")
    parser.add_argument("--force", action="store_true",
                        help="let --out replace a records file that holds more runs")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench",
                        help="where the matrices' run directories are (default runs/bench)")
    parser.add_argument("--rerecord", action="store_true",
                        help="rebuild MATRIX.jsonl from the finished run directories (no training)")
    parser.add_argument("--strict-code", action="store_true",
                        help="reuse only runs made by this exact code version (default: any version; "
                             "the records keep each run's git commit)")
    args = parser.parse_args()
    out = args.runs / args.matrix
    out.mkdir(parents=True, exist_ok=True)
    rows = [(label, row._replace(overrides=resolve(row.overrides)))
            for label, row in matrix_rows(args.matrix).items() if not args.only or label in args.only]
    records_file = RECORDS / f"{args.matrix}.jsonl"
    folds = list(range(FOLDS[args.matrix])) if args.matrix in FOLDS else [None]
    if args.rerecord:
        rerecord(args.matrix, rows, args.seeds, folds, out, records_file)
        print(write_matrix(records_file).read_text())
        return
    made = []
    for seed in args.seeds:  # seed by seed: each finished seed is a whole table
        for fold in folds:
            for label, row in rows:
                used = row.overrides if fold is None else [*row.overrides, f"data.fold={fold}"]
                recorded = None if args.out else known_run(records_file, label, row, used, seed, fold,
                                                           args.strict_code)
                if recorded:
                    made.append(recorded)
                    continue
                run_dir = run(label, row, seed, out, args.strict_code, fold)
                if run_dir:
                    made.append(record_of(args.matrix, label, row.experiment, used, run_dir, row.ceiling))
                    if not args.out:  # --out keeps a trial's records apart from the matrix's
                        add_record(records_file, made[-1])
    if args.out:  # this invocation's runs only (e.g. --only / --seeds) in a file of its own
        if not save_records(args.out, made, args.force):
            print(f"not written: {args.out} holds more runs than this one (--force replaces it)",
                  file=sys.stderr)
            return
        print(args.out.with_suffix(".md").read_text())
        return
    if records_file.is_file():  # every recorded run of the matrix, this one's and earlier ones
        table = write_matrix(records_file)
        print(table.read_text())


if __name__ == "__main__":
    main()
