"""docs/imil_fills.png: one benchmark image's shortcut tag removed with every ``imil.fill``.

    python benchmarks/fill_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hkd.data.masking import FILLS, black_out
from hkd.explore import datamodule_for
from hkd.records_io import plt, save_figure

REPO = Path(__file__).resolve().parents[1]


def main(index: int = 0, pad: int = 8) -> Path:
    datamodule = datamodule_for("synthetic", f"data.cache_dir={REPO / '.cache' / 'hkd'}", roi_mode=None)
    image, _, irrelevant = datamodule.datasets["train_eval"].raw(index)
    rows, cols = np.nonzero(irrelevant[0].numpy())
    window = (slice(max(rows.min() - pad, 0), rows.max() + pad + 1),
              slice(max(cols.min() - pad, 0), cols.max() + pad + 1))
    figure, axes = plt.subplots(1, len(FILLS) + 2, figsize=(2.1 * (len(FILLS) + 2), 2.4))
    axes[0].imshow(image[0], cmap="gray", vmin=0, vmax=1)
    axes[0].contour(irrelevant[0], levels=[0.5], colors="red", linewidths=0.8)
    axes[0].set_title("image, tag marked", fontsize=8)
    axes[1].imshow(image[0][window], cmap="gray", vmin=0, vmax=0.4)
    axes[1].set_title("tag (zoomed)", fontsize=8)
    for axis, fill in zip(axes[2:], FILLS):
        edited = black_out(image, irrelevant, fill, generator=torch.Generator().manual_seed(index))
        axis.imshow(edited[0][window], cmap="gray", vmin=0, vmax=0.4)
        axis.set_title(f"fill={fill}", fontsize=8)
    for axis in axes:
        axis.axis("off")
    path = REPO / "docs" / "imil_fills.png"
    save_figure(figure, path)
    return path


if __name__ == "__main__":
    print(main())
