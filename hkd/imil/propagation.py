"""``imil.propagate``: make each clinician mark count. The prior generator learns the irrelevant
regions from the marks so far and proposes them for the other training images; confident
proposals are blacked out too (source ``propagated``, logged apart from the clinician's edits)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from hkd.data.transforms import apply_joint
from hkd.models.prior_generator import PriorGeneratorModule
from hkd.prior_pipeline import predict_masks


class MarkedSamples(Dataset):
    """Unedited training images with their clinician mask as the ``irrelevant`` target."""

    def __init__(self, base, marks: dict[int, np.ndarray]) -> None:
        self.base, self.items = base, sorted(marks.items())

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict:
        idx, mask = self.items[position]
        image = torch.from_numpy(np.asarray(self.base.cache.images[idx], dtype=np.float32))
        target = torch.from_numpy(mask.astype(np.float32))[None]
        image, target = apply_joint(self.base.transform, image, target)
        return {"image": self.base.normalize(image), "irrelevant": (target > 0.5).float(),
                "has_irrelevant": True, "label": 0}


def fit_generator(module: PriorGeneratorModule, loader: DataLoader, epochs: int) -> None:
    """A plain loop: this runs inside a Trainer's callback, where no second Trainer may run."""
    optimizer = module.configure_optimizers()
    module.train()
    for _ in range(epochs):
        for batch in loader:
            batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            loss = module.loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    module.eval()


def propose_irrelevant_regions(trainer, callback, number: int) -> dict[int, np.ndarray]:
    """Rank 0 trains the generator and proposes; every rank receives the same proposals."""
    proposals: dict[int, np.ndarray] = {}
    if trainer.is_global_zero:
        datamodule = trainer.datamodule
        cfg = datamodule.cfg
        marks = {i: e["mask"] for i, e in callback.edits.items() if e["source"] != "propagated"}
        torch.manual_seed(cfg.seed + number)
        module = PriorGeneratorModule(cfg.data.channels, "irrelevant",
                                      tuple(cfg.prior_generator.features), cfg.prior_generator.lr)
        train = datamodule.datasets["train"]
        loader = DataLoader(MarkedSamples(train, marks), batch_size=min(16, len(marks)), shuffle=True)
        steps = max(cfg.prior_generator.epochs, 100 // max(1, len(loader)))  # >= ~100 updates
        fit_generator(module, loader, steps)
        train_eval = datamodule.datasets["train_eval"]
        excluded = set(callback.edits) | callback.rejected
        positions = [p for p, i in enumerate(train_eval.indices) if int(i) not in excluded]
        originals = train_eval.overrides
        train_eval.overrides = {}
        try:
            masks, confidence = predict_masks(module, train_eval, positions, cfg.prior_generator.threshold)
        finally:
            train_eval.overrides = originals
        area_limit = cfg.imil.propagate_max_area
        for idx, mask in masks.items():
            share = mask.mean()
            if 0 < share <= area_limit and confidence[idx] >= cfg.imil.propagate_confidence:
                proposals[idx] = mask
    return trainer.strategy.broadcast(proposals, src=0)
