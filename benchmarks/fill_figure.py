"""docs/imil_fills.png: one benchmark image's shortcut tag removed with every ``imil.fill``.

    python -m benchmarks.fill_figure
"""

from __future__ import annotations

from pathlib import Path

from hkd.notebook import datamodule_for, fills_figure
from hkd.reporting.figures import save_figure

REPO = Path(__file__).resolve().parents[1]


def main(index: int = 0) -> Path:
    datamodule = datamodule_for("synthetic", f"data.cache_dir={REPO / '.cache' / 'hkd'}", roi_mode=None)
    image, _, irrelevant = datamodule.datasets["train_eval"].raw(index)
    path = REPO / "docs" / "imil_fills.png"
    save_figure(fills_figure(image, irrelevant[0], seed=index), path)
    return path


if __name__ == "__main__":
    print(main())
