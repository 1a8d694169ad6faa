"""The training/evaluation dataset over the decoded cache.

Each sample is a dict: ``idx`` (row in the whole data set, stable across splits and ranks),
``image`` (normalised), ``label``, ``prior`` (1, H, W; 1 inside the relevant regions),
``has_prior``, ``irrelevant`` (1, H, W) and ``has_irrelevant``; with ``roi_mode`` also ``roi``,
the HKD teacher's input. IMIL edits live in ``overrides`` ({idx: mask of pixels to black out}),
applied on read so they are data, not copies of images.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from hkd.data.cache import CacheArrays
from hkd.data.masking import black_out, grow, roi_image
from hkd.data.transforms import apply_joint


@contextmanager
def one_thread():
    """Run a sample's many tiny tensor ops on one thread. In the main process (num_workers=0)
    torch would spread each of them over all cores, which the model is using: measured 15 ms
    instead of 0.3 ms per affine warp on 2 busy cores. DataLoader workers are single-threaded."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class PriorDataset(Dataset):
    def __init__(self, cache: CacheArrays, indices: np.ndarray, labels: np.ndarray,
                 has_prior: np.ndarray, mean: list[float], std: list[float],
                 transform=None, roi_mode: str | None = None, roi_fill: str = "zero",
                 prior_soft_edge: float = 0.0, edit_fill: str = "zero",
                 fill_mean: float = 0.5, edit_margin: int = 0) -> None:
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = labels  # over the whole data set, indexed by idx
        self.has_prior_all = has_prior
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.transform = transform
        self.roi_mode = roi_mode
        self.roi_fill = roi_fill
        self.prior_soft_edge = prior_soft_edge
        self.edit_fill = edit_fill
        self.fill_mean = fill_mean
        self.edit_margin = edit_margin  # pixels every edit's region grows by before the fill
        self.overrides: dict[int, np.ndarray] = {}
        self.predicted_priors: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def set_overrides(self, overrides: dict[int, np.ndarray]) -> None:
        """Replace the IMIL edit table (``{idx: (H, W) bool mask to black out}``)."""
        self.overrides = dict(overrides)

    def raw(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image in [0, 1] with its edits applied, relevant and irrelevant masks: no augmentation."""
        image = torch.from_numpy(np.asarray(self.cache.images[idx], dtype=np.float32))
        relevant = torch.from_numpy(np.asarray(self.cache.relevant[idx], dtype=np.float32))[None]
        irrelevant = torch.from_numpy(np.asarray(self.cache.irrelevant[idx], dtype=np.float32))[None]
        if not self.has_prior_all[idx] and idx in self.predicted_priors:
            relevant = torch.from_numpy(self.predicted_priors[idx].astype(np.float32))[None]
        if idx in self.overrides:
            generator = torch.Generator().manual_seed(idx)
            remove = grow(torch.from_numpy(self.overrides[idx].astype(np.float32)), self.edit_margin)
            image = black_out(image, remove, self.edit_fill, self.fill_mean, generator)
        return image, relevant, irrelevant

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std

    def __getitem__(self, position: int) -> dict:
        with one_thread():
            return self.sample(int(self.indices[position]))

    def sample(self, idx: int) -> dict:
        image, relevant, irrelevant = apply_joint(self.transform, *self.raw(idx))
        prior = (relevant > 0.5).float()
        if self.prior_soft_edge > 0:
            kernel = int(4 * self.prior_soft_edge) | 1
            prior = TF.gaussian_blur(prior, [kernel, kernel], [self.prior_soft_edge] * 2)
        has_prior = bool(self.has_prior_all[idx]) or idx in self.predicted_priors
        sample = {"idx": idx, "image": self.normalize(image), "label": int(self.labels[idx]),
                  "prior": prior, "has_prior": has_prior,
                  "irrelevant": (irrelevant > 0.5).float(),
                  "has_irrelevant": bool(irrelevant.max() > 0.5)}
        if self.roi_mode:
            sample["roi"] = self.normalize(roi_image(image, prior, has_prior, self.roi_mode,
                                                     self.roi_fill, self.fill_mean))
        return sample
