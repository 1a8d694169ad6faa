"""Helpers for notebooks: load data and runs, and draw samples, priors and CAMs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hkd.config import load_config
from hkd.data.datamodule import PneumoniaDataModule
from hkd.models.explain import explain_batch
from hkd.models.lit_module import ClassifierModule
from hkd.records_io import plt


def datamodule_for(experiment: str, *overrides: str,
                   roi_mode: str | None = "blackout") -> PneumoniaDataModule:
    """A prepared, set-up DataModule for an experiment (with ROI images by default)."""
    datamodule = PneumoniaDataModule(load_config(experiment, list(overrides)), roi_mode=roi_mode)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


def raw_image(sample: dict, datamodule: PneumoniaDataModule, key: str = "image") -> np.ndarray:
    """A sample's (normalised) image back in [0, 1] for display."""
    mean, std = datamodule.data.mean[0], datamodule.data.std[0]
    return (sample[key][0].numpy() * std + mean).clip(0, 1)


def sample_grid(datamodule: PneumoniaDataModule, split: str = "train", per_class: int = 3,
                show_roi: bool = True):
    """Per class: image with the prior (green) and irrelevant regions (red), and its ROI image."""
    dataset = datamodule.datasets[f"{split}_eval" if split == "train" else split]
    rows = []
    for label in range(len(datamodule.classes)):
        positions = [p for p, i in enumerate(dataset.indices) if datamodule.labels[i] == label]
        rows.append(positions[:per_class])
    columns = per_class * (2 if show_roi else 1)
    figure, axes = plt.subplots(len(rows), columns, figsize=(1.9 * columns, 2 * len(rows)), squeeze=False)
    for row, positions in enumerate(rows):
        for k, position in enumerate(positions):
            sample = dataset[position]
            axis = axes[row, k * (2 if show_roi else 1)]
            axis.imshow(raw_image(sample, datamodule), cmap="gray", vmin=0, vmax=1)
            axis.contour(sample["prior"][0].numpy(), levels=[0.5], colors="lime", linewidths=0.8)
            axis.contour(sample["irrelevant"][0].numpy(), levels=[0.5], colors="red", linewidths=0.8)
            axis.set_title(f"{datamodule.classes[sample['label']]} #{sample['idx']}", fontsize=8)
            if show_roi and "roi" in sample:
                axes[row, k * 2 + 1].imshow(raw_image(sample, datamodule, "roi"), cmap="gray", vmin=0, vmax=1)
                axes[row, k * 2 + 1].set_title("ROI image", fontsize=8)
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    return figure


def load_run(run_dir: str | Path) -> tuple[ClassifierModule, dict]:
    """The best checkpoint's model (eval mode) and the run's summary."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    module = ClassifierModule.load_from_checkpoint(summary["best_checkpoint"], map_location="cpu")
    return module.eval(), summary


def predict(module: ClassifierModule, dataset, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes and probabilities for the samples at ``positions``."""
    samples = [dataset[p] for p in positions]
    with torch.no_grad():
        logits = module(torch.stack([s["image"] for s in samples]))
    probabilities = logits.softmax(1).numpy()
    return probabilities.argmax(1), probabilities


def cam_figure(modules: dict[str, ClassifierModule], datamodule: PneumoniaDataModule,
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


def fills_figure(image: torch.Tensor, remove: torch.Tensor, pad: int = 8, seed: int = 0):
    """One image (1, H, W in [0, 1]) with the region ``remove`` (H, W) taken out by every
    ``imil.fill``, zoomed on the region: which fills leave a visible patch."""
    from hkd.data.masking import FILLS, black_out

    rows, cols = np.nonzero(remove.numpy() > 0.5)
    window = (slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
              slice(max(cols.min() - pad, 0), cols.max() + pad + 1))
    figure, axes = plt.subplots(1, len(FILLS) + 2, figsize=(2.1 * (len(FILLS) + 2), 2.4))
    axes[0].imshow(image[0], cmap="gray", vmin=0, vmax=1)
    axes[0].contour(remove, levels=[0.5], colors="red", linewidths=0.8)
    axes[0].set_title("image, region marked", fontsize=8)
    axes[1].imshow(image[0][window], cmap="gray", vmin=0, vmax=0.4)
    axes[1].set_title("region (zoomed)", fontsize=8)
    for axis, fill in zip(axes[2:], FILLS):
        edited = black_out(image, remove, fill, generator=torch.Generator().manual_seed(seed))
        axis.imshow(edited[0][window], cmap="gray", vmin=0, vmax=0.4)
        axis.set_title(f"fill={fill}", fontsize=8)
    for axis in axes:
        axis.axis("off")
    return figure
