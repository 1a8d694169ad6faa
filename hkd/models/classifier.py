"""The classifier LightningModule: any timm backbone, a pluggable training method, torchmetrics
on val/test and explanation metrics (relevance mass, pointing game) on the test split."""

from __future__ import annotations

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
    MulticlassStatScores,
)

from hkd.explanations.cam import grad_cam
from hkd.explanations.metrics import region_scores
from hkd.models.backbone import features_and_logits
from hkd.models.counterfactual_scores import CounterfactualScores
from hkd.models.nonfinite import NonFiniteGuard
from hkd.models.optim import Optimization, configure_optimization
from hkd.models.per_sample import PerSampleOutputs


class WorstClassAccuracy(MulticlassStatScores):
    """The lowest accuracy on the images of one class (per-class recall), over the classes present:
    SubpopBench's worst-group accuracy with the classes as groups."""

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(num_classes, average="none", **kwargs)

    def compute(self) -> torch.Tensor:
        stats = super().compute()  # per class: tp, fp, tn, fn, support
        present = stats[:, 4] > 0
        return (stats[present, 0].float() / stats[present, 4]).min()


def classification_metrics(num_classes: int, prefix: str, sync: bool = True) -> MetricCollection:
    """``sync=False``: one process's figures alone (no gathering across DDP ranks)."""
    return MetricCollection({
        "accuracy": MulticlassAccuracy(num_classes, average="micro", sync_on_compute=sync),
        "balanced_accuracy": MulticlassRecall(num_classes, average="macro", sync_on_compute=sync),
        "worst_class_accuracy": WorstClassAccuracy(num_classes, sync_on_compute=sync),
        "macro_f1": MulticlassF1Score(num_classes, average="macro", sync_on_compute=sync),
        "auroc": MulticlassAUROC(num_classes, average="macro", sync_on_compute=sync),
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
                 batch_mix: Callable | None = None, batch_swap: Callable | None = None,
                 nonfinite_loss: str = "stop", nonfinite_check_every: int = 50, teacher: bool = False,
                 run_config: dict | None = None) -> None:
        super().__init__()
        # what loading needs to rebuild it: the method (a teacher's is plain cross-entropy on ROIs)
        self.save_hyperparameters({"cfg": run_config, "classes": list(classes),
                                   "class_weights": class_weights, "input_key": method.input_key,
                                   "teacher": teacher})
        self.classes, self.input_key = list(classes), method.input_key
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
        self.counterfactual = CounterfactualScores(num_classes)  # views of images with a relevant region
        self.test_metrics = classification_metrics(num_classes, "test/")
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_relevance_mass = MeanMetric()
        self.test_pointing_game = MeanMetric()
        self.batch_mix, self.batch_swap = batch_mix, batch_swap  # batch_swap: augment.counterfactual
        self.confusion_matrix: torch.Tensor | None = None
        self._compiled = None
        self.skipped_batches = 0  # steps skipped for a non-finite loss
        self.nonfinite = NonFiniteGuard()

    @property
    def run_config(self) -> dict:
        """The configuration of the run that built this module, as plain values (run, inference)."""
        return dict(self.hparams["cfg"] or {})

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

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        return self.method.before_transfer(batch) if self.training else batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.batch_swap is not None:
            batch = self.batch_swap(batch).logged(self)
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
        """The host's look at the device's count of non-finite steps (all ranks together)."""
        self.skipped_batches += self.nonfinite.act(
            lambda count: self.trainer.strategy.reduce(count, reduce_op="sum"), self.nonfinite_loss)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self(batch[self.input_key])
        loss = F.cross_entropy(logits, batch["label"])
        self.val_metrics.update(logits.softmax(1), batch["label"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(logits))
        self.log_dict(self.val_metrics, batch_size=len(logits))
        if "cf_swap" in batch and self.input_key == "image":  # the views are of the raw image
            self.counterfactual.update(self, batch, logits)

    def on_validation_epoch_end(self) -> None:
        self.counterfactual.log_epoch(self, self.val_metrics["balanced_accuracy"].compute())

    def true_class_cams(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the Grad-CAM (B, h, w) of the true class, both detached."""
        with torch.enable_grad():
            features, logits = self.features_and_logits(x.detach(), compiled=False)
            cam = grad_cam(features, logits, labels).detach()
        return logits.detach(), cam

    def scored(self, batch: dict) -> dict[str, torch.Tensor]:
        """Per sample: ``idx``, class ``probabilities`` (calibrated) and the raw ``logits`` (before
        the temperature); for labelled samples with their regions also the true class's
        ``relevance_mass`` and ``pointing_game`` (NaN without regions)."""
        x = batch[self.input_key]
        if "label" not in batch or "prior" not in batch:
            with torch.no_grad():
                raw = self.features_and_logits(x)[1]
            return {"idx": batch["idx"], "probabilities": self.calibrated(raw).softmax(1), "logits": raw}
        raw, cam = self.true_class_cams(x, batch["label"])
        mass, pointing = region_scores(cam, batch["prior"], batch["has_prior"])
        return {"idx": batch["idx"], "probabilities": self.calibrated(raw).softmax(1), "logits": raw,
                "relevance_mass": mass, "pointing_game": pointing}

    def predict_step(self, batch: dict, batch_idx: int = 0,
                     dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        return self.scored(batch)

    def on_test_epoch_start(self) -> None:
        self.per_sample = PerSampleOutputs()
        self.test_outputs: dict[str, np.ndarray] | None = None

    def test_step(self, batch: dict, batch_idx: int) -> None:
        out, labels = self.scored(batch), batch["label"]
        logits = self.calibrated(out["logits"])
        self.test_metrics.update(out["probabilities"], labels)
        self.test_confusion.update(logits, labels)
        self.log("test/loss", F.cross_entropy(logits, labels), sync_dist=True, batch_size=len(labels))
        self.log_dict(self.test_metrics, batch_size=len(labels))
        self.per_sample.add(**{key: value.float() if key in ("probabilities", "logits") else value
                               for key, value in out.items()})
        annotated = batch["has_prior"].bool().to(out["relevance_mass"].device)
        if annotated.any():
            self.test_relevance_mass.update(out["relevance_mass"][annotated])
            self.test_pointing_game.update(out["pointing_game"][annotated])
            self.log("test/relevance_mass", self.test_relevance_mass)
            self.log("test/pointing_game", self.test_pointing_game)

    def on_test_epoch_end(self) -> None:
        self.confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
        self.test_outputs = self.per_sample.gathered(self)

    def configure_optimizers(self):
        steps = self.trainer.estimated_stepping_batches if self.optimization.per_step else 0
        return configure_optimization(self, self.optimization, self.trainer.max_epochs or 1, steps)
