"""Run experiments x seeds (each in its own process; finished runs are skipped), then print the
comparison table and save it under benchmarks/results/.

    python benchmarks/matrix.py methods        # the HKD issue's method comparison
    python benchmarks/matrix.py imil           # IMIL budgets, start epochs, augmentations
    python benchmarks/matrix.py calibration    # shortcut vs shortcut-free baseline
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from hkd.reporting.compare import (
    aggregate,
    find_summaries,
    markdown_table,
    paired_differences,
    paired_table,
    plot,
    save_table,
)

REPO = Path(__file__).resolve().parents[1]

# label -> (experiment, overrides)
METHODS = {method: (f"synthetic_{method}", []) for method in
           ("baseline", "hkd", "rrr", "gradmask", "actdiff", "cam_align")}
MATRICES: dict[str, dict[str, tuple[str, list[str]]]] = {
    "calibration": {
        "baseline (shortcut)": ("synthetic_baseline", []),
        "shortcut-free (ceiling)": ("synthetic_clean", []),
    },
    "methods": {**METHODS, "shortcut-free (ceiling)": ("synthetic_clean", [])},
    # The same comparison with the lungs as every method's prior (the anatomical prior real data sets
    # provide): the finding boxes' shape names the class, so a teacher on them needs no image.
    "methods_lung": {label: (experiment, [*overrides, "data.relevant_categories=[lung]"])
                     for label, (experiment, overrides) in METHODS.items()},
    "no_augmentation": {
        "baseline, no augmentation": ("synthetic_baseline", ["augment.policy=none"]),
        "hkd (lung), no augmentation": ("synthetic_hkd_lung", ["augment.policy=none"]),
    },
    "hkd_variant": {
        "hkd (mean fill, kd all epochs)": ("synthetic_hkd_full_kd", []),
    },
    "prior": {
        "hkd roi_fraction=0.1": ("synthetic_hkd", ["hkd.roi_fraction=0.1"]),
        "hkd roi_fraction=0.1 + predicted prior": ("synthetic_hkd",
                                                   ["hkd.roi_fraction=0.1", "hkd.prior=predicted"]),
        "hkd (lung) roi_fraction=0.1": ("synthetic_hkd_lung", ["hkd.roi_fraction=0.1"]),
        "hkd (lung) roi_fraction=0.1 + predicted prior": ("synthetic_hkd_lung",
                                                          ["hkd.roi_fraction=0.1", "hkd.prior=predicted"]),
    },
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
    },
}


def same_run(run_dir: Path, experiment: str, overrides: list[str]) -> bool:
    from hkd.config import load_config, to_dotlist

    saved = OmegaConf.load(run_dir / "config.yaml")
    wanted = load_config(experiment, [*overrides, f"seed={saved.seed}", f"name={saved.name}",
                                      f"output_dir={saved.output_dir}", "logging.wandb=disabled",
                                      "logging.progress_bar=false"])
    saved_keys, wanted_keys = to_dotlist(saved), to_dotlist(wanted)
    # a key added to the project after the run counts as the same when left at its default
    defaults = to_dotlist(OmegaConf.load(REPO / "experiments" / "base.yaml"))
    return all(saved_keys.get(key, defaults.get(key)) == wanted_keys.get(key)
               for key in {*saved_keys, *wanted_keys})


def run(label: str, experiment: str, overrides: list[str], seed: int, out: Path) -> Path | None:
    slug = label.replace(" ", "_").replace("=", "").replace("+", "plus").replace("(", "").replace(")", "")
    for folder in [out, *sorted(out.parent.iterdir())]:  # the same run in another matrix counts
        existing = folder / slug / f"seed{seed}"
        if (existing / "summary.json").is_file() and same_run(existing, experiment, overrides):
            return existing
    unfinished = out / slug / f"seed{seed}"
    if unfinished.exists():  # killed before its summary: start it again from scratch
        print(f"removing the unfinished {unfinished}", flush=True)
        shutil.rmtree(unfinished)
    command = [sys.executable, "-m", "hkd", "train", experiment, *overrides, f"seed={seed}",
               f"output_dir={out}", f"name={slug}", "logging.wandb=disabled", "logging.progress_bar=false"]
    env = {"HKD_RUN_ID": f"seed{seed}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, cwd=REPO, env={**os.environ, **env},
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAILED {label} seed {seed}:\n{result.stderr[-3000:]}", file=sys.stderr)
        return None
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["name"] = label
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{label} seed {seed}: test acc {summary['test']['accuracy']:.3f} "
          f"({summary['duration_s']:.0f} s)", flush=True)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("matrix", choices=sorted(MATRICES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=None, help="labels to run (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the table (default benchmarks/results/MATRIX.md)")
    parser.add_argument("--force", action="store_true", help="replace a table that covers more runs")
    args = parser.parse_args()
    out = REPO / "runs" / "bench" / args.matrix
    out.mkdir(parents=True, exist_ok=True)
    dirs = []
    for label, (experiment, overrides) in MATRICES[args.matrix].items():
        if args.only and label not in args.only:
            continue
        for seed in args.seeds:
            run_dir = run(label, experiment, overrides, seed, out)
            if run_dir:
                dirs.append(run_dir)
    summaries = find_summaries(dirs)
    table = aggregate(summaries, "name")
    text = markdown_table(table)
    reference = next(iter(MATRICES[args.matrix]))  # the first row is the matrix's reference
    if len(table) > 1 and reference in table:
        text += "\n\n" + paired_table(paired_differences(summaries, reference), reference)
    print(text)
    out_file = args.out or REPO / "benchmarks" / "results" / f"{args.matrix}.md"
    if not save_table(out_file, text, args.force):
        print(f"not written: {out_file} covers more runs than this one (write elsewhere with --out, "
              "or replace it with --force)", file=sys.stderr)
        return
    plot(table, out_file.with_suffix(".png"))


if __name__ == "__main__":
    main()
