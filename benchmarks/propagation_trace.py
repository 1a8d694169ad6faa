"""Why IMIL's propagation generator stops where it does (issue #32): the generator as configured
trains on the simulated clinician's marks of 4 % of the synthetic benchmark's training images, and
every 10 updates the trace records what the stopping rule sees on the marked images (the share
whose region would be proposed, the share of their marked pixels covered) beside what it does to
every other image (how many it proposes for, the share of their planted tag the proposals cover,
how many tags they cover entirely), and where the rule would stop.

    python -m benchmarks.propagation_trace --seeds 0 1 2 --updates 120

Writes ``benchmarks/results/propagation_trace.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from hkd.atomic import atomic_write_text
from hkd.config import load_config
from hkd.data.training_images import TrainingImages
from hkd.imil.edits import Edit, EditTable
from hkd.imil.oracles import AnnotationOracle
from hkd.imil.propagation import (
    CHECK_EVERY,
    MarkedSamples,
    Propagation,
    candidates,
    fit_generator,
    reproduces_marks,
)
from hkd.models.prior_generator import PriorGeneratorModule, predict_masks
from hkd.run.build import build_datamodule, build_imil_callback, edit_table
from hkd.run.run_dir import code_version

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
FULLY = 0.99  # a proposal "removes the tag" when it covers at least this share of its pixels


def simulated_round(cfg) -> tuple[Propagation, TrainingImages, EditTable, dict[int, np.ndarray | None]]:
    """Round 1 as the simulated clinician makes it: the first ``imil.budget`` share of the training
    images that carry a planted marker, marked; the propagation settings, the images, the edit
    table and every training image's true marker (None: none)."""
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    images = datamodule.training_images()
    table, oracle = edit_table(cfg), AnnotationOracle(images)
    truth = {int(idx): oracle.irrelevant_regions(int(idx))[0] for idx in images.indices}
    budget = max(1, round(float(cfg.imil.budget) * len(images.indices)))
    for idx in [idx for idx, mask in truth.items() if mask is not None][:budget]:
        table[idx] = Edit(mask=truth[idx], round=1, epoch=0, source="oracle")
    return build_imil_callback(cfg, Path(cfg.output_dir) / "propagation").propagation, images, table, truth


def proposal_quality(regions: dict[int, np.ndarray], truth: dict[int, np.ndarray | None]) -> dict:
    """How many images got a proposal, the mean share of their tag covered, and how many proposals
    cover it entirely (``FULLY``)."""
    covered = [float((regions[idx] & truth[idx]).sum() / truth[idx].sum())
               for idx in regions if truth[idx] is not None and truth[idx].any()]
    return {"proposed": len(regions), "tag_covered": float(np.mean(covered)) if covered else 0.0,
            "tag_removed": int(sum(share >= FULLY for share in covered))}


def trace(seed: int, updates: int, work: Path, overrides: tuple[str, ...] = ()) -> dict:
    """The generator's first ``updates`` (a multiple of ``CHECK_EVERY``) on the benchmark of this
    seed, what the rule and the proposals look like every ``CHECK_EVERY``, and where it stops."""
    cfg = load_config("synthetic_imil_propagate", [f"seed={seed}", "logging.wandb=disabled",
                                                   f"output_dir={work / 'runs'}",
                                                   f"data.cache_dir={work / 'cache'}", *overrides])
    settings, images, table, truth = simulated_round(cfg)
    torch.manual_seed(settings.seed + 1)
    module = PriorGeneratorModule(settings.channels, "irrelevant", settings.features, settings.lr)
    marks = table.clinician_masks()
    loader = DataLoader(MarkedSamples(images, marks, images.image_size),
                        batch_size=min(settings.batch_size, len(marks)), shuffle=True)
    dataset, others = images.evaluation_dataset(edited=False), candidates(images, table, set())
    position = {int(idx): p for p, idx in enumerate(images.indices)}
    steps = []

    def record() -> bool:
        own, own_confidence = predict_masks(module, dataset, [position[i] for i in marks], settings.threshold)
        regions, confidence = predict_masks(module, dataset, others, settings.threshold)
        accepted = {idx: mask for idx, mask in regions.items() if settings.accepts(mask, confidence[idx])}
        steps.append({"updates": CHECK_EVERY * (len(steps) + 1),
                      "marks_proposable": float(np.mean([settings.accepts(own[i], own_confidence[i])
                                                         for i in marks])),
                      "marks_covered": float(np.mean([(own[i] & marks[i]).sum() / marks[i].sum()
                                                      for i in marks])),
                      "stops": reproduces_marks(module, settings, images, marks, images.image_size),
                      **proposal_quality(accepted, truth)})
        return False  # train on: the trace goes past the stop

    fit_generator(module, loader, updates, record)
    stop = next((step["updates"] for step in steps if step["stops"]), None)
    return {"seed": seed, "marks": len(marks), "others": len(others), "stop": stop, "steps": steps}


def table_md(traces: list[dict]) -> str:
    lines = ["| seed | updates | marks proposable | marked pixels covered | others proposed "
             "| their tag covered | tags removed entirely | |", "|---|---|---|---|---|---|---|---|"]
    for run in traces:
        for step in run["steps"]:
            lines.append(f"| {run['seed']} | {step['updates']} | {100 * step['marks_proposable']:.0f} % "
                         f"| {100 * step['marks_covered']:.1f} % | {step['proposed']} / {run['others']} "
                         f"| {100 * step['tag_covered']:.1f} % | {step['tag_removed']} "
                         f"| {'**stops here**' if step['updates'] == run['stop'] else ''} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--updates", type=int, default=120)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hkd-propagation-trace"))
    parser.add_argument("--out", type=Path, default=RESULTS / "propagation_trace")
    args = parser.parse_args()
    traces = [trace(seed, args.updates, args.work) for seed in args.seeds]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(traces, indent=1))
    command = f"python -m benchmarks.propagation_trace --seeds {' '.join(map(str, args.seeds))} " \
              f"--updates {args.updates}"
    footer = f"<sub>code {code_version()[:12]} · `{command}`</sub>"
    atomic_write_text(args.out.with_suffix(".md"), f"{table_md(traces)}\n\n{footer}\n")
    print(table_md(traces))


if __name__ == "__main__":
    main()
