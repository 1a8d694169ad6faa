"""``hkd refit RUN_DIR``: a last-layer refit on counterfactual views (beyond both papers). After Deep
Feature Reweighting (Kirichenko et al., ICLR 2023): a network that reads a shortcut often still
computes the features the task needs, and a new classifier head fitted on data where the shortcut
says nothing recovers them. DFR needs a held-out set balanced over groups, which needs group labels;
here the human prior replaces them: the head is fitted on the swap views of the training images (the
pixels outside each image's relevant region from an image of another class, ``hkd.data.counterfactual``),
where whatever lies outside the region names the wrong class.

The backbone stays frozen. The pooled features the head reads are computed once for the swap views
of the training images with a region; a multinomial logistic regression (scikit-learn, on
standardised features) is fitted for each strength in ``STRENGTHS``, and the one with the best
balanced accuracy on the validation split's swap views is kept, folded back into the network's
linear head. The result is a new run directory beside the old one (``RUN_DIR-refit``; its
``summary.json``, written last, marks it complete) with its own checkpoint, evaluation, clinical report,
``summary.json`` (``refit``: every strength's scores) and model card, which ``hkd predict``,
``hkd test``, ``hkd audit`` and ``hkd export`` read like any run. Minutes on a CPU, no retraining."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.utils.data import DataLoader

from hkd.atomic import atomic_write
from hkd.config import load_run_config, save_config
from hkd.data.datamodule import ChestXrayDataModule
from hkd.errors import ConfigError, InputError
from hkd.inference.model import best_checkpoint, load_model
from hkd.reporting.model_card import write_model_card
from hkd.run.build import build_datamodule, swap_settings
from hkd.run.run_dir import code_version, write_summary
from hkd.run.saved_prior import apply_saved_prior
from hkd.run.stage import Fitted, Stage, report, strip_prefix
from hkd.run.trainer import build_trainer

STRENGTHS = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse regularisation strengths (C) tried
REFIT_CHECKPOINT = "best-refit.ckpt"


def linear_head(net: nn.Module) -> tuple[str, nn.Linear]:
    """The network's classifier layer and its name in ``net`` (a timm model's ``get_classifier``)."""
    head = net.get_classifier() if hasattr(net, "get_classifier") else None
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"hkd refit needs a linear classifier head; {type(net).__name__}'s is "
                          f"{type(head).__name__}")
    name = next(name for name, module in net.named_modules() if module is head)
    return name, head


@torch.no_grad()
def pre_logits(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The pooled features (B, D) the classifier head reads."""
    return net.forward_head(net.forward_features(images), pre_logits=True)


@torch.no_grad()
def swap_view_features(net: nn.Module, datamodule: ChestXrayDataModule, split: str, batch_size: int,
                       with_clean: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Features of the swap views of ``split``'s images with a region, their labels, and (with
    ``with_clean``) the features of those images as they are."""
    device = next(net.parameters()).device
    features, labels, clean = [], [], []
    for batch in DataLoader(datamodule.datasets[split], batch_size=batch_size):
        region = batch["has_region"].bool()
        if region.any():
            features.append(pre_logits(net, batch["cf_swap"][region].to(device)).float().cpu().numpy())
            if with_clean:
                clean.append(pre_logits(net, batch["image"][region].to(device)).float().cpu().numpy())
            labels.append(batch["label"][region].numpy())
    if not features:
        raise InputError(f"hkd refit: no {split} image has a relevant region (annotations, or "
                         "data.prior_generator), so there are no swap views to fit the head on")
    return np.concatenate(features), np.concatenate(labels), np.concatenate(clean) if clean else None


def fit_head(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray, np.ndarray],
             num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The head's weights (K, D) and bias (K,) in the network's feature space, and every
    strength's validation balanced accuracy on swap views and on the images as they are."""
    features, labels = train
    mean, scale = features.mean(0), features.std(0) + 1e-6
    fitted, scores = {}, {}
    for strength in STRENGTHS:
        model = LogisticRegression(C=strength, max_iter=2000, random_state=seed)
        model.fit((features - mean) / scale, labels)
        predict = [model.predict((views - mean) / scale) for views in (val[0], val[2])]
        scores[str(strength)] = {"val_swap_balanced_accuracy": balanced_accuracy_score(val[1], predict[0]),
                                 "val_balanced_accuracy": balanced_accuracy_score(val[1], predict[1])}
        fitted[strength] = model
    best = max(STRENGTHS, key=lambda s: scores[str(s)]["val_swap_balanced_accuracy"])
    model = fitted[best]
    weight = np.zeros((num_classes, features.shape[1]))
    bias = np.zeros(num_classes)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # scikit-learn's one row for two classes: logit of the second
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight[model.classes_] = coef / scale
    bias[model.classes_] = intercept - (coef * mean / scale).sum(1)
    if len(model.classes_) < num_classes:  # a class without swap views is never predicted
        bias[np.setdiff1d(np.arange(num_classes), model.classes_)] = -1e4
    return weight, bias, {"strength": best, "scores": scores}


def refit(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Refit ``run_dir``'s classifier head on counterfactual views; the new run directory."""
    started = time.time()
    run_dir = Path(run_dir)
    out = Path(out) if out else run_dir.with_name(f"{run_dir.name}-refit")
    if (out / "summary.json").is_file():
        raise InputError(f"{out} already holds a refit; give another --out")
    module, _ = load_model(run_dir, "cpu")
    quiet = ["logging.wandb=disabled", "calibration.temperature=false"]  # the old head's temperature is moot
    cfg = load_run_config(run_dir / "config.yaml", quiet)
    datamodule = build_datamodule(cfg)
    apply_saved_prior(cfg, datamodule)
    settings = swap_settings(cfg)
    for split in ("train_eval", "val"):
        datamodule.add_counterfactual_views(split, settings)
    module.temperature.fill_(1.0)
    name, head = linear_head(module.net)
    batch_size = int(cfg.data.eval_batch_size)
    train_features, train_labels, _ = swap_view_features(module.net, datamodule, "train_eval", batch_size)
    val = swap_view_features(module.net, datamodule, "val", batch_size, with_clean=True)
    weight, bias, choice = fit_head((train_features, train_labels), val, len(module.classes), int(cfg.seed))
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    record = {"from": str(run_dir), "head": name, "train_views": len(train_labels), "val_views": len(val[1]),
              **choice}

    saved = torch.load(best_checkpoint(run_dir), map_location="cpu", weights_only=False)
    saved["state_dict"].update({f"net.{name}.weight": head.weight.detach().clone(),
                                f"net.{name}.bias": head.bias.detach().clone()})
    atomic_write(out / "checkpoints" / REFIT_CHECKPOINT, lambda tmp: torch.save(saved, tmp))
    save_config(cfg, out / "config.yaml")
    evaluate_refit(cfg, run_dir, out, module, datamodule, record, started)
    return out


def evaluate_refit(cfg: DictConfig, run_dir: Path, folder: Path, module, datamodule, record: dict,
                   started: float) -> None:
    """The new head's validation and test pass, clinical report, summary and model card."""
    trainer = build_trainer(cfg, folder, 0, cfg.checkpoint.monitor, cfg.checkpoint.mode)
    val = strip_prefix(trainer.validate(module, datamodule=datamodule, verbose=False)[0], "val/")
    test = strip_prefix(trainer.test(module, datamodule=datamodule, verbose=False)[0], "test/") \
        if len(datamodule.datasets["test"]) else {}
    intervals = report(cfg, Stage(folder, 0), Fitted(trainer, str(folder / "checkpoints" / REFIT_CHECKPOINT)),
                       datamodule, module)
    original = json.loads((run_dir / "summary.json").read_text())
    kept = {key: value for key, value in original.items() if not key.endswith("_last_epoch")}
    explanations = {key: test.pop(key) for key in ("relevance_mass", "pointing_game") if key in test}
    write_summary(folder / "summary.json", {
        **kept, "name": f"{original.get('name', cfg.name)} + refit", "val": val, "test": test,
        "explanations": explanations, "test_ci": intervals, "refit": record, "run_dir": str(folder),
        "best_checkpoint": str(folder / "checkpoints" / REFIT_CHECKPOINT), "git_commit": code_version(),
        "duration_s": round(time.time() - started, 2)})
    write_model_card(folder, cfg)
