"""Figures of runs and data: confusion matrices, CAM overlays, sample grids, fills. Matplotlib's
backend is set here (Agg, except inside a notebook kernel), and nowhere else."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # notebooks keep their inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hkd.atomic import atomic_write  # noqa: E402
from hkd.data.datamodule import ChestXrayDataModule  # noqa: E402
from hkd.data.masking import FILLS, black_out  # noqa: E402


def save_figure(figure, path: Path) -> None:
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120,
                                                  bbox_inches="tight"))
    plt.close(figure)


def save_confusion_matrix(matrix: torch.Tensor, classes: list[str], path: Path,
                          title: str = "test") -> None:
    matrix = matrix.numpy()
    figure, axis = plt.subplots(figsize=(1.2 + 0.9 * len(classes), 1 + 0.8 * len(classes)))
    axis.imshow(matrix, cmap="Blues")
    for (row, col), value in np.ndenumerate(matrix):
        axis.text(col, row, str(int(value)), ha="center", va="center",
                  color="white" if value > matrix.max() / 2 else "black")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"confusion matrix ({title})")
    save_figure(figure, path)


def save_cam_overlays(images: np.ndarray, cams: np.ndarray, priors: np.ndarray,
                      titles: list[str], path: Path) -> None:
    """A row per image: the image with its prior's outline, and the CAM over it."""
    n = len(images)
    figure, axes = plt.subplots(2, n, figsize=(1.8 * n, 3.8), squeeze=False)
    for column in range(n):
        for row in range(2):
            axis = axes[row, column]
            axis.imshow(images[column], cmap="gray")
            axis.contour(priors[column], levels=[0.5], colors="lime", linewidths=0.8)
            axis.axis("off")
        axes[1, column].imshow(cams[column], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[0, column].set_title(titles[column], fontsize=7)
    save_figure(figure, path)


def mask_overlay_grid(images: np.ndarray, masks: np.ndarray, path: Path, columns: int = 8,
                      titles: list[str] | None = None) -> None:
    """Images (N, C, S, S) in [0, 1] with their masks' outlines, ``columns`` per row."""
    n = len(images)
    rows = -(-n // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.7 * rows), squeeze=False)
    for position, axis in enumerate(axes.flat):
        axis.axis("off")
        if position < n:
            axis.imshow(images[position].mean(0), cmap="gray", vmin=0, vmax=1)
            axis.contour(masks[position], levels=[0.5], colors="lime", linewidths=0.8)
            if titles:
                axis.set_title(titles[position], fontsize=7)
    save_figure(figure, path)


def raw_image(sample: dict, datamodule: ChestXrayDataModule, key: str = "image") -> np.ndarray:
    """A sample's (normalised) image back in [0, 1] for display."""
    mean, std = datamodule.samples.mean[0], datamodule.samples.std[0]
    return (sample[key][0].numpy() * std + mean).clip(0, 1)


def sample_grid(datamodule: ChestXrayDataModule, split: str = "train", per_class: int = 3,
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


def fills_figure(image: torch.Tensor, remove: torch.Tensor, pad: int = 8, seed: int = 0):
    """One image (1, H, W in [0, 1]) with the region ``remove`` (H, W) taken out by every
    ``imil.fill``, zoomed on the region: which fills leave a visible patch."""
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
