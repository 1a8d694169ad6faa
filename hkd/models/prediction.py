"""Run a classifier's ``predict_step`` over a loader without a Trainer (inside a run, or for a
loaded model): concatenated per-sample outputs as numpy arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def move(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def predict_batches(module, loader: DataLoader, progress: bool = False) -> dict[str, np.ndarray]:
    """``module.predict_step`` on every batch of ``loader`` (eval mode, the module's device)."""
    was_training = module.training
    module.eval()
    columns: dict[str, list[np.ndarray]] = {}
    try:
        for batch_idx, batch in enumerate(tqdm(loader, desc="predict", disable=not progress, unit="batch")):
            out = module.predict_step(move(batch, module.device), batch_idx)
            for key, value in out.items():
                columns.setdefault(key, []).append(value.detach().float().cpu().numpy()
                                                   if value.is_floating_point() else value.cpu().numpy())
    finally:
        module.train(was_training)
    return {key: np.concatenate(parts) for key, parts in columns.items()}
