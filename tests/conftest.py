"""Shared fixtures: W&B off, a tiny CPU configuration, small data sets written to tmp_path."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from hkd.config import load_config

REPO = Path(__file__).resolve().parents[1]
SHARED_COVID = REPO.parent / "shared" / "datasets" / "covid-chestxray"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifact staging
    monkeypatch.delenv("HKD_RUN_ID", raising=False)
    monkeypatch.setenv("HKD_EXPERIMENTS", str(REPO / "experiments"))
    yield
    os.environ.pop("HKD_RUN_ID", None)


TINY = [
    "data.synthetic.n_train=40", "data.synthetic.n_val=16", "data.synthetic.n_test=16",
    "data.synthetic.size=48", "data.image_size=32", "data.batch_size=8",
    "data.eval_batch_size=16", "trainer.max_epochs=1", "trainer.accelerator=cpu",
    "logging.wandb=disabled", "logging.progress_bar=false", "explain.n_images=4",
    "trainer.log_every_n_steps=2",
]


def tiny_config(tmp_path: Path, *overrides: str, experiment: str = "quickstart"):
    """The quickstart experiment shrunk to seconds, writing under tmp_path."""
    return load_config(experiment, [*TINY, f"output_dir={tmp_path / 'runs'}",
                                    f"data.cache_dir={tmp_path / 'cache'}", *overrides])


@pytest.fixture
def tiny(tmp_path):
    return lambda *overrides, experiment="quickstart": tiny_config(
        tmp_path, *overrides, experiment=experiment)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def make_folder_dataset(root: Path, n_per_class: int = 6, classes=("a", "b"), size: int = 40,
                        with_split: bool = False, annotations: bool = True, with_sex: bool = False) -> Path:
    """A small folder-format data set: a bright square whose position depends on the class,
    with its box as the relevant annotation (``with_sex``: a ``sex`` metadata column, F / M)."""
    rng = np.random.default_rng(0)
    rows, images, anns = [], [], []
    for k, label in enumerate(classes):
        for i in range(n_per_class):
            image = (rng.uniform(0, 40, (size, size))).astype(np.uint8)
            x0, y0 = 4 + 16 * k, 8
            image[y0:y0 + 10, x0:x0 + 10] = 230
            name = f"img/{label}_{i}.png"
            write_png(root / name, image)
            split = ("train", "train", "train", "val", "test")[i % 5] if with_split else ""
            patient = f"{label}{i}" if with_split else f"{label}{i // 2}"
            rows.append({"image": name, "label": label, "patient_id": patient,
                         **({"split": split} if with_split else {}),
                         **({"sex": "FM"[i % 2]} if with_sex else {})})
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": name, "width": size, "height": size})
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1,
                         "bbox": [x0, y0, 10, 10]})
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if annotations:
        (root / "annotations.json").write_text(json.dumps({
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "finding"}, {"id": 2, "name": "irrelevant"}]}))
    return root


def logged_test_metrics(run_dir: Path) -> dict[str, float]:
    """The ``test/...`` values the run logged to metrics.csv (the last test row)."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("test/accuracy")]
    return {key[len("test/"):]: float(value) for key, value in rows[-1].items()
            if key.startswith("test/") and value}


def trained_looking(net: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm running statistics and affine parameters, as after training; eval mode."""
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor, low, high in ((module.running_mean, -1, 1), (module.running_var, 0.5, 2),
                                      (module.weight.data, 0.5, 1.5), (module.bias.data, -1, 1)):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return net.eval()
