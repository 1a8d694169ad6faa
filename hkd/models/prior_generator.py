"""The human-prior heatmap generator: a MONAI ``BasicUNet`` trained on the annotated images to
predict a region mask (``prior`` = relevant regions for HKD, ``irrelevant`` for IMIL
propagation), so that images without annotations get a predicted one."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from monai.networks.nets import BasicUNet

from hkd.atomic import atomic_write
from hkd.models.generator_file import GENERATOR_FILE, generator_path  # noqa: F401 (re-exported)


def dice_scores(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample Dice of two boolean mask batches (B, ...)."""
    predicted, target = predicted.flatten(1).float(), target.flatten(1).float()
    return 2 * (predicted * target).sum(1) / (predicted.sum(1) + target.sum(1) + 1e-6)


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
        dice = dice_scores(self(batch["image"][keep]) > 0, batch[self.target][keep] > 0.5)
        self.log("prior_generator/val_dice", dice.mean(), sync_dist=True, batch_size=int(keep.sum()))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)

    @torch.no_grad()
    @torch.no_grad()
    def predict_probabilities(self, image: torch.Tensor) -> torch.Tensor:
        self.eval()
        return torch.sigmoid(self(image.to(self.device)))[:, 0].cpu()


def predict_masks(module: PriorGeneratorModule, dataset, positions: list[int], threshold: float,
                  batch_size: int = 64, size: int | None = None
                  ) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Thresholded masks and mean confidence for the samples at ``positions`` of an unaugmented
    ``dataset`` (keyed by their data set row), its images read from the cache a batch at a time
    (``images_for``: no ROI images or counterfactual views are built for them); with ``size`` the
    generator sees them at that size and its probabilities return to the images' size."""
    masks, confidence = {}, {}
    rows = np.asarray(dataset.indices)[np.asarray(positions, dtype=np.int64)]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        images = dataset.images_for(chunk)
        if size is not None and size != images.shape[-1]:
            full = images.shape[-2:]
            small = F.interpolate(images, size=size, mode="area")
            probabilities = F.interpolate(module.predict_probabilities(small)[:, None], size=full,
                                          mode="bilinear", align_corners=False)[:, 0]
        else:
            probabilities = module.predict_probabilities(images)
        for idx, probability in zip(chunk, probabilities):
            masks[int(idx)] = (probability > threshold).numpy()
            inside = probability[probability > threshold]
            confidence[int(idx)] = float(inside.mean()) if len(inside) else 0.0
    return masks, confidence


def save_generator(module: PriorGeneratorModule, path: Path, preprocessing: dict, record: dict) -> Path:
    """The trained generator with what its input must look like (``image_size``, ``channels``,
    ``mean``, ``std``, ``threshold``) and its record (held-out Dice, data), in one file."""
    state = {"hparams": dict(module.hparams), "state_dict": module.state_dict(),
             "preprocessing": preprocessing, "record": record}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_generator(path: str | Path) -> tuple[PriorGeneratorModule, dict]:
    """A generator saved by ``save_generator`` (``hkd prior train``) and its preprocessing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved prior generator (make one with `hkd prior train`)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module = PriorGeneratorModule(**state["hparams"])
        module.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, TypeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: not a prior generator saved by `hkd prior train` ({error})") from error
    return module.eval(), state["preprocessing"]


@torch.no_grad()
def predict_regions(module: PriorGeneratorModule, preprocessing: dict, images: np.ndarray,
                    batch_size: int = 64) -> np.ndarray:
    """Masks (N, S, S) uint8 for raw images (N, C, S, S) in [0, 1] of any size S: resized to the
    generator's input size and normalised as it was trained, the masks resized back."""
    size = images.shape[-1]
    mean = torch.tensor(preprocessing["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocessing["std"], dtype=torch.float32).view(1, -1, 1, 1)
    masks = np.zeros((len(images), size, size), np.uint8)
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.asarray(images[start:start + batch_size], np.float32))
        if batch.shape[1] != preprocessing["channels"]:  # gray <-> RGB
            batch = batch.mean(1, keepdim=True).expand(-1, preprocessing["channels"], -1, -1)
        batch = F.interpolate(batch, size=preprocessing["image_size"], mode="bilinear", antialias=True,
                              align_corners=False)
        probabilities = module.predict_probabilities((batch - mean) / std)[:, None]
        probabilities = F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)
        masks[start:start + len(batch)] = (probabilities[:, 0] > preprocessing["threshold"]).numpy()
    return masks
