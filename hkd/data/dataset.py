"""The training/evaluation dataset over the decoded cache.

Each sample is a dict: ``idx`` (row in the whole data set, stable across splits and ranks),
``image`` (normalised), ``label``, ``prior`` (1, H, W; 1 inside the relevant regions),
``has_prior``, ``irrelevant`` (1, H, W) and ``has_irrelevant``; with ``roi_mode`` also ``roi``,
the HKD teacher's input; with ``counterfactual`` (the validation split) also ``cf_swap``,
``cf_roi`` and ``has_region`` (``hkd.data.counterfactual``). IMIL edits come from an edit table
(``edits``, see ``hkd.imil.edits``) applied on read, so they are data, not copies of images.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import Dataset

from hkd.data.cache import CacheArrays
from hkd.data.counterfactual import (
    CounterfactualSettings,
    CounterfactualViews,
    region_mask,
    roi_view,
    swap_view,
)
from hkd.data.masking import roi_image
from hkd.data.transforms import apply_joint


class ImageEdits(Protocol):
    """What the dataset needs of an edit table: which samples are edited, which read an edit
    (``changes``: with ``imil.edit_scope=all`` every one), and the edit itself."""

    def __contains__(self, idx: object) -> bool: ...

    def changes(self, idx: int) -> bool: ...

    def apply(self, idx: int, image: torch.Tensor) -> torch.Tensor: ...


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


class ChestXrayDataset(Dataset):
    def __init__(self, cache: CacheArrays, indices: np.ndarray, labels: np.ndarray,
                 has_prior: np.ndarray, mean: list[float], std: list[float],
                 transform=None, roi_mode: str | None = None, roi_fill: str = "zero",
                 prior_soft_edge: float = 0.0, fill_mean: float = 0.5) -> None:
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
        self.fill_mean = fill_mean
        self.edits: ImageEdits | None = None  # IMIL's edit table, applied on read
        # imil.edit=add: an edited image joins its original (read after the originals) instead of replacing it
        self.add_edited_copies = False
        self.edited_copies: list[int] = []  # their rows, as of the training loader's last build
        self.predicted_priors: dict[int, np.ndarray] = {}
        self.counterfactual: CounterfactualViews | None = None  # the validation split's extra views

    def __len__(self) -> int:
        return len(self.indices) + len(self.edited_copies)

    def take_edited_copies(self) -> None:
        """With ``imil.edit=add``: the rows whose edited copy follows the originals, in split order,
        taken once when the training loader is built (a round's new edits join at the next build;
        ``imil.edit=add`` rebuilds it every epoch), not on every read."""
        if not self.add_edited_copies or self.edits is None:
            self.edited_copies = []
            return
        edited = {int(idx) for idx in self.edits}
        self.edited_copies = [int(idx) for idx in self.indices if int(idx) in edited]

    def labels_by_position(self) -> np.ndarray:
        """The class of every position (the originals, then any edited copies)."""
        return self.labels[np.concatenate([self.indices, np.asarray(self.edited_copies, dtype=np.int64)])]

    def without_edits(self) -> ChestXrayDataset:
        """The same samples as they were before any IMIL edit."""
        unedited = copy.copy(self)
        unedited.edits = None
        return unedited

    def original(self, idx: int) -> torch.Tensor:
        """The cached image (C, H, W) in [0, 1], unedited and unaugmented."""
        return torch.from_numpy(np.asarray(self.cache.images[idx], dtype=np.float32))

    def raw(self, idx: int, edited: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image in [0, 1] with its edits applied (unless ``edited`` is false), relevant and
        irrelevant masks: no augmentation."""
        image = self.original(idx)
        relevant = torch.from_numpy(np.asarray(self.cache.relevant[idx], dtype=np.float32))[None]
        irrelevant = torch.from_numpy(np.asarray(self.cache.irrelevant[idx], dtype=np.float32))[None]
        if not self.has_prior_all[idx] and idx in self.predicted_priors:
            relevant = torch.from_numpy(self.predicted_priors[idx].astype(np.float32))[None]
        if edited and self.edits is not None and self.edits.changes(idx):
            image = self.edits.apply(idx, image)
        return image, relevant, irrelevant

    def images_for(self, indices: np.ndarray) -> torch.Tensor:
        """Normalised images (B, C, H, W) of these samples with their edits, no augmentation: one
        read of the cache for the whole batch (for forward-only passes such as IMIL's mining)."""
        images = torch.from_numpy(np.asarray(self.cache.images[indices], dtype=np.float32))
        if self.edits is not None:
            for row, idx in enumerate(indices):
                if self.edits.changes(int(idx)):
                    images[row] = self.edits.apply(int(idx), images[row])
        return self.normalize(images)

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.mean) / self.std

    def __getitem__(self, position: int) -> dict:
        with one_thread():
            if position < len(self.indices):  # with imil.edit=add the originals stay unedited
                return self.sample(int(self.indices[position]), edited=not self.add_edited_copies)
            return self.sample(self.edited_copies[position - len(self.indices)])

    def augment(self, image: torch.Tensor, *masks: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One random draw of this split's augmentation on an image and its masks together."""
        return apply_joint(self.transform, image, *masks)

    def sample(self, idx: int, edited: bool = True) -> dict:
        image, relevant, irrelevant = self.augment(*self.raw(idx, edited))
        prior = (relevant > 0.5).float()
        if self.prior_soft_edge > 0:
            kernel = int(4 * self.prior_soft_edge) | 1
            prior = TF.gaussian_blur(prior, [kernel, kernel], [self.prior_soft_edge] * 2)
        has_prior = self.has_region(idx)
        sample = {"idx": idx, "image": self.normalize(image), "label": int(self.labels[idx]),
                  "prior": prior, "has_prior": has_prior,
                  "irrelevant": (irrelevant > 0.5).float(),
                  "has_irrelevant": bool(irrelevant.max() > 0.5)}
        if self.roi_mode:
            sample["roi"] = self.normalize(roi_image(image, prior, has_prior, self.roi_mode,
                                                     self.roi_fill, self.fill_mean))
        if self.counterfactual is not None:
            sample.update(self.counterfactual_views(idx, image, relevant, has_prior))
        return sample

    def has_region(self, idx: int) -> bool:
        """Whether the image has a relevant region (annotated, or predicted)."""
        return bool(self.has_prior_all[idx]) or idx in self.predicted_priors

    def counterfactual_views(self, idx: int, image: torch.Tensor, relevant: torch.Tensor,
                             has_prior: bool) -> dict:
        """``cf_swap`` and ``cf_roi`` (normalised) of an unaugmented image, and ``cf_swap_same`` with
        the audit's control; ``has_region`` says whether they are counterfactuals at all (without a
        region or partners they are the image)."""
        views = self.counterfactual
        partner = views.partners.get(idx, -1)
        same = views.same_class_partners.get(idx, -1) if views.same_class_partners is not None else 0
        names = ("cf_swap", "cf_roi") + (("cf_swap_same",) if views.same_class_partners is not None else ())
        if not has_prior or partner < 0 or same < 0:
            normalized = self.normalize(image)
            return {**{name: normalized for name in names}, "has_region": False}
        region = region_mask(relevant, views.settings.margin)
        sample = {"cf_swap": self.normalize(self.swapped(image, region, partner, views.settings)),
                  "cf_roi": self.normalize(roi_view(image, region, views.settings)), "has_region": True}
        if views.same_class_partners is not None:
            sample["cf_swap_same"] = self.normalize(self.swapped(image, region, same, views.settings))
        return sample

    def swapped(self, image: torch.Tensor, region: torch.Tensor, partner: int,
                settings: CounterfactualSettings) -> torch.Tensor:
        """``image`` with the pixels outside ``region`` from row ``partner`` (``swap_view``)."""
        partner_image, partner_relevant, _ = self.raw(partner)
        partner_region = region_mask(partner_relevant, settings.margin) if self.has_region(partner) \
            else torch.zeros_like(region)
        return swap_view(image, region, partner_image, partner_region, settings)

    def swapped_images_for(self, indices: np.ndarray, partners: dict[int, int],
                           settings: CounterfactualSettings) -> tuple[torch.Tensor, np.ndarray]:
        """Normalised swap views (B, C, H, W) of these samples, with their edits and no
        augmentation, and whether each is one (a sample without a region or partner is itself)."""
        views, swapped = [], []
        for idx in map(int, indices):
            image, relevant, _ = self.raw(idx)
            partner = partners.get(idx, -1)
            ok = self.has_region(idx) and partner >= 0
            views.append(self.swapped(image, region_mask(relevant, settings.margin), partner, settings)
                         if ok else image)
            swapped.append(ok)
        return self.normalize(torch.stack(views)), np.array(swapped, dtype=bool)
