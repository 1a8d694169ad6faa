"""The model as training left it, beside the selected checkpoint (beyond both papers): a method
counts as robust only where the checkpoint its monitor selected and the last epoch agree. After
``fit`` and before the best checkpoint is loaded, one pass over validation (with the swap view's
balanced accuracy where the counterfactual views are on) and test; nothing is written but the
figures, which ``summary.json`` keeps as ``val_last_epoch`` / ``test_last_epoch``. Under DDP rank 0
makes the pass alone over every image."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassRecall

from hkd.data.datamodule import ChestXrayDataModule
from hkd.models.classifier import ClassifierModule, classification_metrics


def checkpoint_epoch(path: str | Path | None) -> int | None:
    """The epoch (0-based) in a ``best-epoch=NN.ckpt`` file name, or None."""
    found = re.search(r"epoch=(\d+)", Path(path or "").name)
    return int(found.group(1)) if found else None


@torch.no_grad()
def split_metrics(module: ClassifierModule, loader, num_classes: int) -> dict[str, float]:
    """Classification metrics of the module's predictions on one loader's images, and of its swap
    views (``cf_balanced_accuracy``, images with a region only) where the batches carry them."""
    # rank 0 alone under DDP: nothing is gathered from the other ranks
    plain = classification_metrics(num_classes, "", sync=False).to(module.device)
    swapped = MulticlassRecall(num_classes, average="macro", sync_on_compute=False).to(module.device)
    any_swapped = False
    for batch in loader:
        labels = batch["label"].to(module.device)
        plain.update(module(batch[module.input_key].to(module.device)).softmax(1), labels)
        if "cf_swap" in batch and module.input_key == "image" and batch["has_region"].any():
            region = batch["has_region"].bool()
            views = batch["cf_swap"][region].to(module.device)
            swapped.update(module(views).argmax(1), labels[region.to(module.device)])
            any_swapped = True
    metrics = {key: float(value) for key, value in plain.compute().items()}
    if any_swapped:
        metrics["cf_balanced_accuracy"] = float(swapped.compute())
    return metrics


def last_epoch_metrics(module: ClassifierModule, datamodule: ChestXrayDataModule) -> dict[str, dict]:
    """``{"val": ..., "test": ...}`` of the module as it is now (the last epoch's weights)."""
    datamodule.setup()
    was_training = module.training
    module.eval()
    loaders = {"val": datamodule.val_dataloader, "test": datamodule.test_dataloader}
    figures = {split: split_metrics(module, loader(), len(module.classes))
               for split, loader in loaders.items() if len(datamodule.datasets[split])}
    module.train(was_training)
    return figures
