"""The classifier LightningModule: any timm backbone, a pluggable training method, torchmetrics
on val/test and explanation metrics (relevance mass, pointing game) on the test split."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from hkd.explanations.cam import grad_cam, upsample
from hkd.explanations.metrics import pointing_game, relevance_mass
from hkd.models.backbone import features_and_logits
from hkd.models.nonfinite import NonFiniteGuard
from hkd.models.optim import Optimization, configure_optimization

log = logging.getLogger(__name__)




class NonFiniteLossError(RuntimeError):
    """Training met a NaN/inf loss and ``training.nonfinite_loss=stop``."""


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    return MetricCollection({
        "accuracy": MulticlassAccuracy(num_classes, average="micro"),
        "balanced_accuracy": MulticlassRecall(num_classes, average="macro"),
        "macro_f1": MulticlassF1Score(num_classes, average="macro"),
        "auroc": MulticlassAUROC(num_classes, average="macro"),
    }, prefix=prefix)


class TrainingMethod(Protocol):
    """What the module needs of a training method (``hkd.methods``): the sample key it reads and
    how a batch becomes a loss."""

    input_key: str

    def training_loss(self, module: ClassifierModule, batch: dict) -> dict[str, torch.Tensor]: ...


class ClassifierModule(L.LightningModule):
    """A classifier network (``net``, built by the caller, e.g. ``hkd.run.build.build_module``)
    trained by ``method``, evaluated on ``method.input_key`` (the raw image, or the ROI image for
    HKD's teacher, marked by ``teacher``). It takes plain values and built parts; ``run_config``
    is only kept in the checkpoint (to rebuild the run's model and preprocessing), never read here."""

    def __init__(self, net: nn.Module, method: TrainingMethod, classes: list[str], *,
                 optimization: Optimization, class_weights: list[float] | None = None,
                 channels_last: bool = False, compile: bool = False,
                 batch_mix: Callable | None = None, nonfinite_loss: str = "stop",
                 nonfinite_check_every: int = 50, teacher: bool = False,
                 run_config: dict | None = None) -> None:
        super().__init__()
        # what loading needs to rebuild it: the method (a teacher's is plain cross-entropy on ROIs)
        self.save_hyperparameters({"cfg": run_config, "classes": list(classes),
                                   "class_weights": class_weights, "input_key": method.input_key,
                                   "teacher": teacher})
        self.classes = list(classes)
        self.input_key = method.input_key
        self.optimization = optimization
        self.channels_last, self.compile = channels_last, compile
        self.nonfinite_loss, self.nonfinite_check_every = nonfinite_loss, max(1, int(nonfinite_check_every))
        num_classes = len(classes)
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.method = method
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        # temperature scaling (hkd.evaluation.calibration): fitted on validation after training, kept
        # beside the checkpoint (calibration.json), never in it; 1 while training
        self.register_buffer("temperature", torch.ones(()), persistent=False)
        self.val_metrics = classification_metrics(num_classes, "val/")
        # counterfactual views of the validation images with a relevant region (hkd.data.counterfactual)
        self.val_swap_balanced = MulticlassRecall(num_classes, average="macro")
        self.val_roi_balanced = MulticlassRecall(num_classes, average="macro")
        self.val_flip_rate = MeanMetric()
        self.counterfactual_seen = False  # this validation epoch had views to score
        self.test_metrics = classification_metrics(num_classes, "test/")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_relevance_mass = MeanMetric()
        self.test_pointing_game = MeanMetric()
        self.batch_mix = batch_mix
        self.confusion_matrix: torch.Tensor | None = None
        self._compiled = None
        self.skipped_batches = 0  # steps skipped for a non-finite loss
        self.nonfinite = NonFiniteGuard()

    @property
    def run_config(self) -> dict:
        """The configuration of the run that built this module, as plain values (for the run and
        inference layers, which read it)."""
        return dict(self.hparams["cfg"] or {})

    # -- model -------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.compile and self._compiled is None:
            # compile the whole pass (features + head); compiling `self.net` alone would not
            # cover forward_features/forward_head, which bypass the compiled forward
            net = self.net
            self._compiled = torch.compile(lambda x: features_and_logits(net, x))

    def features_and_logits(self, x: torch.Tensor,
                            compiled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The feature map and the logits of one pass; ``compiled=False`` for Grad-CAM, which
        differentiates the logits by the feature map (a compiled graph returns both as outputs,
        so the logits do not depend on its feature-map output)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if compiled and self._compiled is not None:
            return self._compiled(x)
        return features_and_logits(self.net, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits as deployed: divided by the temperature (1 unless calibrated)."""
        return self.calibrated(self.features_and_logits(x)[1])

    def calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature

    def cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor,
                      soft_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy with the hard labels, or with MixUp/CutMix soft labels when given."""
        target = labels if soft_labels is None else soft_labels
        return F.cross_entropy(logits, target, weight=self.class_weights)

    # -- steps -------------------------------------------------------------------------------
    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        return self.method.before_transfer(batch) if self.training else batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.batch_mix is not None:
            image, soft = self.batch_mix(batch["image"], batch["label"])
            batch = {**batch, "image": image, "soft_label": soft, "label": soft.argmax(1)}
        out = self.method.training_loss(self, batch)
        self.nonfinite.note_loss(out["loss"], batch["idx"], self.global_step, self.current_epoch, batch_idx)
        batch_size = len(batch["label"])
        for key, value in out.items():
            if key != "logits":
                self.log(f"train/{key}", value, prog_bar=key == "loss", batch_size=batch_size)
        acc = (out["logits"].argmax(1) == batch["label"]).float().mean()
        self.log("train/accuracy", acc, prog_bar=True, batch_size=batch_size)
        return out["loss"]

    # -- non-finite losses (hkd.models.nonfinite) ----------------------------------------------
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)  # 16-mixed: it skips overflows
        self.nonfinite.guard_step(optimizer, count_gradients=scaler is None)

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        if (batch_idx + 1) % self.nonfinite_check_every == 0:
            self.act_on_nonfinite_steps()

    def on_validation_start(self) -> None:
        if self.trainer.training:  # before the epoch's checkpoint is written
            self.act_on_nonfinite_steps()

    def on_train_epoch_end(self) -> None:
        self.act_on_nonfinite_steps()

    def act_on_nonfinite_steps(self) -> None:
        """The host's look at the device's count of non-finite steps (all ranks together): skip
        (count and warn) or stop, per ``training.nonfinite_loss``."""
        new, where = self.nonfinite.new_bad_steps(
            lambda count: self.trainer.strategy.reduce(count, reduce_op="sum"))
        if not new:
            return
        if self.nonfinite_loss == "skip":
            self.skipped_batches += new
            log.warning("non-finite loss or gradients in %d step(s), first at %s: those steps were "
                        "skipped", new, where)
            return
        # raise rather than stop at the epoch's end: no checkpoint may be written from here on
        raise NonFiniteLossError(f"non-finite loss or gradients at {where} ({new} step(s) skipped; "
                                 "the weights never took a non-finite step)")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch[self.input_key])
        loss = F.cross_entropy(logits, batch["label"])
        self.val_metrics.update(logits.softmax(1), batch["label"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(logits))
        self.log_dict(self.val_metrics, batch_size=len(logits))
        if "cf_swap" in batch and self.input_key == "image":  # the views are of the raw image
            self.score_counterfactuals(batch, logits)

    def score_counterfactuals(self, batch: dict, logits: torch.Tensor) -> None:
        """The images with a region, seen through their swap and roi views (one pass for both):
        balanced accuracy under each, and the share whose predicted class the swap changes."""
        region = batch["has_region"].bool()
        if not region.any():
            return
        views = torch.cat([batch["cf_swap"][region], batch["cf_roi"][region]])
        swap_logits, roi_logits = self(views).chunk(2)
        labels = batch["label"][region]
        self.val_swap_balanced.update(swap_logits, labels)
        self.val_roi_balanced.update(roi_logits, labels)
        self.val_flip_rate.update((swap_logits.argmax(1) != logits[region].argmax(1)).float())
        self.counterfactual_seen = True

    def on_validation_epoch_end(self) -> None:
        """``val/cf/*``, ``val/roi/balanced_accuracy`` and the selection score ``val/cf_score``: the
        worse of the clean and the swapped balanced accuracy (absent when no image had a region)."""
        seen = torch.tensor(float(self.counterfactual_seen), device=self.device)
        if float(self.trainer.strategy.reduce(seen, reduce_op="sum")) == 0:  # every rank decides alike
            return
        swap = self.val_swap_balanced.compute()
        clean = self.val_metrics["balanced_accuracy"].compute()
        self.log_dict({"val/cf/balanced_accuracy": swap, "val/cf/flip_rate": self.val_flip_rate.compute(),
                       "val/roi/balanced_accuracy": self.val_roi_balanced.compute(),
                       "val/cf_score": torch.minimum(clean, swap)})
        for metric in (self.val_swap_balanced, self.val_roi_balanced, self.val_flip_rate):
            metric.reset()
        self.counterfactual_seen = False

    def true_class_cams(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the Grad-CAM (B, h, w) of the true class, both detached."""
        with torch.enable_grad():
            features, logits = self.features_and_logits(x.detach(), compiled=False)
            cam = grad_cam(features, logits, labels).detach()
        return logits.detach(), cam

    @staticmethod
    def region_scores(cam: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: relevance mass and pointing game of ``cam`` against the expert regions
        (``prior``); NaN where the sample has none."""
        region = (batch["prior"][:, 0] > 0.5).float()
        cam = upsample(cam, tuple(region.shape[-2:]))
        annotated = batch["has_prior"].bool().to(cam.device)
        missing = torch.full((len(cam),), float("nan"), device=cam.device)
        return (torch.where(annotated, relevance_mass(cam, region), missing),
                torch.where(annotated, pointing_game(cam, region), missing))

    def on_test_epoch_start(self) -> None:
        self._test_parts: list[dict[str, torch.Tensor]] = []
        self.test_outputs: dict[str, np.ndarray] | None = None

    def test_step(self, batch: dict, batch_idx: int) -> None:
        labels = batch["label"]
        raw, cam = self.true_class_cams(batch[self.input_key], labels)
        logits = self.calibrated(raw)
        probabilities = logits.softmax(1)
        self.test_metrics.update(probabilities, labels)
        self.test_confusion.update(logits, labels)
        self.log("test/loss", F.cross_entropy(logits, labels), sync_dist=True,
                 batch_size=len(labels))
        self.log_dict(self.test_metrics, batch_size=len(labels))
        mass, pointing = self.region_scores(cam, batch)
        self._test_parts.append({"idx": batch["idx"], "probabilities": probabilities.float(),
                                 "logits": raw.float(), "relevance_mass": mass, "pointing_game": pointing})
        annotated = batch["has_prior"].bool().to(mass.device)
        if annotated.any():
            self.test_relevance_mass.update(mass[annotated])
            self.test_pointing_game.update(pointing[annotated])
            self.log("test/relevance_mass", self.test_relevance_mass)
            self.log("test/pointing_game", self.test_pointing_game)

    def predict_step(self, batch: dict, batch_idx: int = 0,
                     dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """Per sample: ``idx``, class ``probabilities`` (calibrated) and the raw ``logits`` (before
        the temperature); for labelled samples with their regions also the true class's
        ``relevance_mass`` and ``pointing_game`` (NaN without regions)."""
        x = batch[self.input_key]
        if "label" not in batch or "prior" not in batch:
            with torch.no_grad():
                raw = self.features_and_logits(x)[1]
                return {"idx": batch["idx"], "probabilities": self.calibrated(raw).softmax(1), "logits": raw}
        raw, cam = self.true_class_cams(x, batch["label"])
        mass, pointing = self.region_scores(cam, batch)
        return {"idx": batch["idx"], "probabilities": self.calibrated(raw).softmax(1), "logits": raw,
                "relevance_mass": mass, "pointing_game": pointing}

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
        self.test_outputs = self.gathered_test_outputs()

    def gathered_test_outputs(self) -> dict[str, np.ndarray]:
        """The test pass's per-sample outputs (``idx``, ``probabilities``, raw ``logits``,
        ``relevance_mass``, ``pointing_game``; NaN without regions) from every rank, each sample
        once, by ``idx`` (a distributed sampler repeats samples to give every rank as many)."""
        parts = self._test_parts
        if not parts:
            return {}
        local = {key: torch.cat([part[key] for part in parts]).detach() for key in parts[0]}
        if self.trainer.world_size > 1:
            local = {key: value.flatten(0, 1) for key, value in self.all_gather(local).items()}
        _, first = np.unique(local["idx"].cpu().numpy(), return_index=True)
        return {key: value.cpu().numpy()[first] for key, value in local.items()}

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        steps = self.trainer.estimated_stepping_batches if self.optimization.per_step else 0
        return configure_optimization(self, self.optimization, self.trainer.max_epochs or 1, steps)
