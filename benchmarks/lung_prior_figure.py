"""The lung prior across data sets: the saved generator's Dice on covid-chestxray (from its run
record) and a figure of the lungs it predicts on Kermany's pediatric test images (no ground truth
there: a figure to look at).

    python -m benchmarks.lung_prior_figure      # after matrix.py kermany trained the generator

writes benchmarks/results/lung_prior.md and docs/kermany_lungs.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hkd.atomic import atomic_write_text
from hkd.config import load_config
from hkd.models.prior_generator import load_generator, predict_regions
from hkd.reporting.figures import mask_overlay_grid
from hkd.run.build import build_datamodule

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "benchmarks" / "artifacts" / "lung_prior"
KERMANY = REPO.parent / "shared" / "datasets" / "kermany-pediatric-cxr"


def dice_table(summary: dict) -> str:
    return "\n".join([
        "| generator | trained on | images (train) | Dice, validation | Dice, held-out test (images) |",
        "|---|---|---|---|---|",
        f"| BasicUNet {summary['preprocessing']['image_size']} px, {summary['epochs']} epochs "
        f"| {summary['data']} lungs (boxes ∪ V7 outlines ∪ lungVAE masks) | {summary['n_train']} "
        f"| {100 * summary['val_dice']:.1f} | {100 * summary['test_dice']:.1f} ({summary['n_test']}) |",
        "", f"<sub>code {str(summary['git_commit'])[:12]}, seed {summary['seed']}, "
            f"{summary['duration_s']:.0f} s</sub>"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, default=GENERATOR)
    parser.add_argument("--root", type=Path, default=KERMANY)
    parser.add_argument("--per-class", type=int, default=6)
    args = parser.parse_args()
    summary = json.loads((args.generator / "summary.json").read_text())
    atomic_write_text(REPO / "benchmarks" / "results" / "lung_prior.md", dice_table(summary) + "\n")
    cfg = load_config("kermany_baseline", [f"data.root={args.root}", "logging.wandb=disabled"])
    datamodule = build_datamodule(cfg)
    datamodule.setup()
    test = datamodule.datasets["test"]
    shown = [int(idx) for label in range(len(datamodule.classes))
             for idx in test.indices[datamodule.labels[test.indices] == label][:args.per_class]]
    images = np.stack([test.original(idx).numpy() for idx in shown])
    module, preprocessing = load_generator(args.generator / "prior_generator.pt")
    masks = predict_regions(module, preprocessing, images)
    mask_overlay_grid(images, masks, REPO / "docs" / "kermany_lungs.png", columns=args.per_class,
                      titles=[datamodule.classes[datamodule.labels[idx]] for idx in shown])


if __name__ == "__main__":
    main()
