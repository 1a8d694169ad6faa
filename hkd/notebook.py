"""Helpers for notebooks: load data and runs, predict, and compare CAMs. Training code never
imports this module; the figures it shares with the run layer live in ``hkd.reporting.figures``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from hkd.config import load_config
from hkd.data.datamodule import ChestXrayDataModule
from hkd.explanations.cam import explain_batch
from hkd.models.classifier import ClassifierModule
from hkd.reporting.figures import fills_figure, raw_image, sample_grid
from hkd.run.build import build_datamodule
from hkd.run.checkpoints import load_classifier

__all__ = ["cam_figure", "datamodule_for", "fills_figure", "load_run", "predict", "raw_image", "sample_grid"]


def datamodule_for(experiment: str, *overrides: str,
                   roi_mode: str | None = "blackout") -> ChestXrayDataModule:
    """A prepared, set-up DataModule for an experiment (with ROI images by default)."""
    datamodule = build_datamodule(load_config(experiment, list(overrides)), roi_mode=roi_mode)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def load_run(run_dir: str | Path) -> tuple[ClassifierModule, dict]:
    """The best checkpoint's model (eval mode) and the run's summary."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    module = load_classifier(summary["best_checkpoint"])
    return module.eval(), summary


def predict(module: ClassifierModule, dataset, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes and probabilities for the samples at ``positions``."""
    samples = [dataset[p] for p in positions]
    with torch.no_grad():
        logits = module(torch.stack([s["image"] for s in samples]))
    probabilities = logits.softmax(1).numpy()
    return probabilities.argmax(1), probabilities


def cam_figure(modules: dict[str, ClassifierModule], datamodule: ChestXrayDataModule,
               positions: list[int], split: str = "test"):
    """Rows = models, columns = samples: Grad-CAM of the true class over the image."""
    dataset = datamodule.datasets[split]
    samples = [dataset[p] for p in positions]
    batch = {"image": torch.stack([s["image"] for s in samples]),
             "label": torch.tensor([s["label"] for s in samples])}
    figure, axes = plt.subplots(len(modules), len(samples), figsize=(1.9 * len(samples), 2.1 * len(modules)),
                                squeeze=False)
    for row, (name, module) in enumerate(modules.items()):
        probabilities, cams = explain_batch(module, batch)
        for column, sample in enumerate(samples):
            axis = axes[row, column]
            axis.imshow(raw_image(sample, datamodule), cmap="gray", vmin=0, vmax=1)
            axis.imshow(cams[column].numpy(), cmap="jet", alpha=0.4, vmin=0, vmax=1)
            axis.contour(sample["prior"][0].numpy(), levels=[0.5], colors="lime", linewidths=0.7)
            predicted = datamodule.classes[int(probabilities[column].argmax())]
            axis.set_title(f"{name}: {predicted}", fontsize=7)
            axis.axis("off")
    figure.tight_layout()
    return figure


