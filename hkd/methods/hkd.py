"""Human Knowledge Distillation (Schaudt et al. 2023, "PneuKnowNet").

Stage 1: a teacher (same timm architecture) is trained with cross-entropy on ROI images built
from the expert annotations; the checkpoint with the lowest validation loss is kept and frozen.
The stages run in order in ``hkd.run.hkd_pipeline`` (prior -> teacher -> features -> student).
Stage 2: the student sees raw images only and minimises
``a_e * MSE(F_teacher(ROI), F_student(raw)) + (1 - a_e) * CE`` with the last pre-pooling feature
maps and ``a_e = a_0 * (1 - e / kd_epochs)`` until ``kd_epochs``, then 0. One student pass gives
both its features and its logits. Only the student is deployed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hkd.methods.base import Method
from hkd.models.frozen import FrozenFeatures


def alpha_schedule(epoch: int, alpha0: float, kd_epochs: int) -> float:
    """The distillation weight at ``epoch`` (0-based): linear decay from ``alpha0`` to 0."""
    if kd_epochs <= 0 or epoch >= kd_epochs:
        return 0.0
    return alpha0 * (1.0 - epoch / kd_epochs)


def default_kd_epochs(kd_epochs: int | None, max_epochs: int) -> int:
    """``hkd.kd_epochs``, or 2/3 of the student's epochs when it is not set."""
    return int(kd_epochs) if kd_epochs is not None else max(1, round(2 * max_epochs / 3))




class HKDStudent(Method):
    name = "hkd"
    inputs = ("image", "roi")
    mixes_batches = False

    def __init__(self, teacher: nn.Module, alpha0: float, kd_epochs: int,
                 teacher_autocast: bool = False) -> None:
        """``teacher``: the network stage 1 trains (a placeholder until its weights are loaded);
        ``alpha0`` and ``kd_epochs``: the distillation weight's start and decay;
        ``teacher_autocast``: the teacher pass in the student's autocast region (faster on GPUs)."""
        super().__init__("image")
        self.teacher = teacher
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.teacher_pass = FrozenFeatures(self.teacher, autocast=teacher_autocast)  # new weights refold
        self.alpha0 = float(alpha0)
        self.feature_cache: np.ndarray | None = None  # hkd.cache_teacher_features (a memory map)
        self.feature_rows: np.ndarray | None = None
        self.kd_epochs = int(kd_epochs)

    def use_teacher_features(self, features: np.ndarray, rows: np.ndarray) -> None:
        """Read training samples' teacher features from ``features`` (``hkd.cache_teacher_features``):
        row ``rows[idx]`` holds data set row ``idx``'s map, -1 for samples outside training."""
        self.feature_cache, self.feature_rows = features, rows

    def before_transfer(self, batch: dict) -> dict:
        """Training batches take their teacher features from the cache (on the host, so they move
        to the device with the batch), when there is one."""
        if self.feature_cache is None or "idx" not in batch:
            return batch
        rows = self.feature_rows[batch["idx"].numpy()]
        if (rows < 0).any():  # not training samples (validation, test)
            return batch
        return {**batch, "teacher_features": torch.from_numpy(np.ascontiguousarray(self.feature_cache[rows]))}

    def train(self, mode: bool = True) -> HKDStudent:
        super().train(mode)
        self.teacher.eval()  # frozen: BatchNorm statistics and dropout stay in eval mode
        return self

    def load_teacher(self, weights: dict[str, torch.Tensor]) -> None:
        """Stage 1's trained teacher network (its state dict)."""
        self.teacher.load_state_dict(weights)

    def teacher_features(self, roi: torch.Tensor) -> torch.Tensor:
        """The frozen teacher's feature map: fp32 outside autocast (as PneuKnowNet's code, which
        calls its teacher under ``no_grad`` outside the student's ``autocast``; or inside it with
        ``hkd.teacher_precision=autocast``), BatchNorms folded."""
        return self.teacher_pass(roi)

    def training_loss(self, module, batch: dict) -> dict[str, torch.Tensor]:
        features, logits = module.features_and_logits(batch["image"])
        ce = module.cross_entropy(logits, batch["label"])
        alpha = alpha_schedule(module.current_epoch, self.alpha0, self.kd_epochs)
        if alpha == 0.0:
            zero = ce.detach() * 0
            return {"loss": ce, "ce": ce, "kd_mse": zero, "alpha": zero + alpha, "logits": logits}
        teacher_features = batch["teacher_features"] if "teacher_features" in batch else \
            self.teacher_features(batch["roi"])
        mse = F.mse_loss(features.flatten(1).float(), teacher_features.flatten(1))
        loss = alpha * mse + (1 - alpha) * ce
        return {"loss": loss, "ce": ce, "kd_mse": mse, "alpha": ce.detach() * 0 + alpha,
                "logits": logits}
