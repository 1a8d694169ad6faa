"""The human-prior heatmap generator: a MONAI ``BasicUNet`` trained on the annotated images to
predict a region mask (``prior`` = relevant regions for HKD, ``irrelevant`` for IMIL
propagation), so that images without annotations get a predicted one."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.networks.nets import BasicUNet


class PriorGeneratorModule(L.LightningModule):
    def __init__(self, in_channels: int = 1, target: str = "prior", features: tuple = (8, 16, 32, 64, 128, 8),
                 lr: float = 2e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.target = target
        self.flag = "has_prior" if target == "prior" else "has_irrelevant"
        self.net = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=1,
                             features=tuple(features))
        self.dice = DiceLoss(sigmoid=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, H, W)."""
        return self.net(image)

    def loss(self, batch: dict) -> torch.Tensor | None:
        keep = batch[self.flag].bool()
        if not keep.any():
            return None
        logits = self(batch["image"][keep])
        target = (batch[self.target][keep] > 0.5).float()
        return self.dice(logits, target) + F.binary_cross_entropy_with_logits(logits, target)

    def training_step(self, batch: dict, batch_idx: int):
        loss = self.loss(batch)
        if loss is not None:
            self.log("prior_generator/train_loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        keep = batch[self.flag].bool()
        if not keep.any():
            return
        predicted = (self(batch["image"][keep]) > 0).float()
        target = (batch[self.target][keep] > 0.5).float()
        intersection = (predicted * target).flatten(1).sum(1)
        dice = 2 * intersection / (predicted.flatten(1).sum(1) + target.flatten(1).sum(1) + 1e-6)
        self.log("prior_generator/val_dice", dice.mean(), sync_dist=True, batch_size=int(keep.sum()))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    def predict_probabilities(self, image: torch.Tensor) -> torch.Tensor:
        self.eval()
        return torch.sigmoid(self(image.to(self.device)))[:, 0].cpu()


def predict_masks(module: PriorGeneratorModule, dataset, positions: list[int], threshold: float,
                  batch_size: int = 64) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Thresholded masks and mean confidence for the samples at ``positions`` (no augmentation)."""
    masks, confidence = {}, {}
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        samples = [dataset[p] for p in chunk]
        images = torch.stack([s["image"] for s in samples])
        probabilities = module.predict_probabilities(images)
        for sample, probability in zip(samples, probabilities):
            mask = (probability > threshold).numpy()
            masks[sample["idx"]] = mask
            inside = probability[probability > threshold]
            confidence[sample["idx"]] = float(inside.mean()) if len(inside) else 0.0
    return masks, confidence
