"""``imil.propagate_with=classifier``: propagation from the classifier's own feature maps (issue
#32, beyond the paper). Instead of training a fresh U-Net on the marked images every round, a
small per-pixel head learns the clinician's irrelevant regions from the frozen classifier's
intermediate feature maps (its stride-4/8/16 stages, pooled or upsampled to one stride-4 grid),
and proposes them for the other training images from one forward pass each: a round costs about
one mining pass instead of a generator's hundred updates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GRID_STRIDE = 4  # the head's grid: one cell per 4x4 pixels (a stride-8 grid misses small tags)
STRIDES = (4, 8, 16)  # the stages it reads: the deepest level of each of these strides
HIDDEN = 32  # the head's hidden channels
CELLS_PER_UPDATE = 4096  # grid cells each update reads (a random draw from all marked images' cells)
LR = 1e-2  # AdamW learning rate of the head (full-batch updates on the marked images' features)


def feature_levels(net: nn.Module) -> list[int]:
    """Indices (into timm's ``feature_info``) of the deepest level at each stride in ``STRIDES``;
    a network without such strides (a ViT: all 16) gives its last level. Refuses networks that
    do not expose their intermediate feature maps (timm's ``forward_intermediates``)."""
    info = getattr(net, "feature_info", None)
    if not info or not hasattr(net, "forward_intermediates"):
        raise ValueError(f"imil.propagate_with=classifier reads the classifier's intermediate feature "
                         f"maps, which {type(net).__name__} does not expose (timm's forward_intermediates); "
                         "use imil.propagate_with=generator")
    reductions = [int(level["reduction"]) for level in info]
    deepest = {r: i for i, r in enumerate(reductions) if r in STRIDES}
    return sorted(deepest.values()) or [len(reductions) - 1]


class FeatureGrid:
    """The frozen classifier's chosen feature maps of a batch, on one grid (``GRID_STRIDE`` px a cell)."""

    def __init__(self, net: nn.Module, image_size: int,
                 precision: Callable[[], AbstractContextManager] = nullcontext) -> None:
        self.net, self.levels, self.precision = net, feature_levels(net), precision
        self.size = max(1, -(-image_size // GRID_STRIDE))

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, g, g) float features of normalised images (B, channels, H, W)."""
        with self.precision():
            maps = self.net.forward_intermediates(images, indices=self.levels, intermediates_only=True)
        return torch.cat([self._on_grid(m.float()) for m in maps], dim=1)

    def _on_grid(self, level: torch.Tensor) -> torch.Tensor:
        if level.shape[-1] >= self.size:
            return F.adaptive_avg_pool2d(level, self.size)
        return F.interpolate(level, size=self.size, mode="bilinear", align_corners=False)


class PixelHead(nn.Module):
    """A per-cell MLP: standardised features -> ``HIDDEN`` -> ReLU -> one logit per grid cell."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.net = nn.Sequential(nn.Linear(len(mean), HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))

    def forward(self, cells: torch.Tensor) -> torch.Tensor:
        """Logits (N,) of feature vectors (N, C)."""
        return self.net((cells - self.mean) / self.std)[:, 0]

    def grid_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, 1, g, g) of feature maps (B, C, g, g)."""
        b, _, h, w = features.shape
        return self(features.permute(0, 2, 3, 1).flatten(0, 2)).reshape(b, 1, h, w)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probability = torch.sigmoid(logits)
    return 1 - (2 * (probability * target).sum() + 1) / (probability.sum() + target.sum() + 1)


def fit_head(features: torch.Tensor, targets: torch.Tensor, updates: int) -> PixelHead:
    """A head trained for ``updates`` AdamW steps (BCE + Dice, as the generator) on the marked
    images' features (N, C, g, g) and their irrelevant masks at image size (N, 1, H, W), pooled
    onto the grid (a cell's target: the share of it inside the mask). Each step reads a random
    ``CELLS_PER_UPDATE`` of the cells, so a step costs the same however many images are marked."""
    grid_targets = F.adaptive_avg_pool2d(targets.float(), features.shape[-1]).flatten()
    cells = features.permute(0, 2, 3, 1).flatten(0, 2)
    head = PixelHead(cells.mean(0), cells.std(0).clamp_min(1e-6)).to(features.device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=LR)
    for _ in range(updates):
        chosen = torch.randperm(len(cells), device=cells.device)[:CELLS_PER_UPDATE]
        logits, target = head(cells[chosen]), grid_targets[chosen]
        inside = (target > 0.5).float()
        loss = soft_dice_loss(logits, inside) + F.binary_cross_entropy_with_logits(logits, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head.eval()


@torch.inference_mode()
def head_probabilities(head: PixelHead, features: torch.Tensor, image_size: int) -> torch.Tensor:
    """Per-pixel probabilities (B, H, W) at image size, the grid's logits upsampled."""
    logits = F.interpolate(head.grid_logits(features), size=image_size, mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[:, 0]


def batches(rows: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]
