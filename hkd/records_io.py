"""The run directory: its id, summary.json, confusion matrix and CAM overlay figures."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # notebooks keep their inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from hkd.config import ConfigError  # noqa: E402
from hkd.io import atomic_write, atomic_write_json  # noqa: E402

RUN_ID_ENV = "HKD_RUN_ID"
_USED_RUN_IDS: set[str] = set()


def launcher_run_id(env: Mapping[str, str]) -> str | None:
    """An id every rank of a torchrun or multi-task srun job computes alike (all ranks run the
    same sequence of runs, so the count keeps successive runs apart); None outside such jobs."""
    torchrun = env.get("TORCHELASTIC_RUN_ID", "none")
    if torchrun != "none":
        return f"torchrun-{torchrun[:8]}-{len(_USED_RUN_IDS)}"
    if "SLURM_STEP_ID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return f"slurm-{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}-{len(_USED_RUN_IDS)}"
    return None


def run_id() -> str:
    """A new id for each run of this process, shared with its DDP children: they inherit the
    environment, where a launcher (or the user) may also set ``HKD_RUN_ID`` beforehand. Ranks
    started independently (torchrun, srun) derive it from the launcher's job id."""
    current = os.environ.get(RUN_ID_ENV)
    if not current or current in _USED_RUN_IDS:
        current = launcher_run_id(os.environ)
        if current is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(f"this process is one of WORLD_SIZE={os.environ['WORLD_SIZE']} ranks started "
                               f"by a launcher: set {RUN_ID_ENV} to the same value on every rank (e.g. "
                               f"{RUN_ID_ENV}=$(date +%Y%m%d-%H%M%S) on each node), so they share one run "
                               "directory")
        current = current or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        os.environ[RUN_ID_ENV] = current
    _USED_RUN_IDS.add(current)
    return current


def new_run_dir(output_dir: str, name: str) -> Path:
    path = Path(output_dir) / name / run_id()
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_json(path, summary)
