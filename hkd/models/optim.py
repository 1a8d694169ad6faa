"""Optimisers (``optim.name``) and learning-rate schedules (``optim.scheduler``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.optim import param_groups_weight_decay

from hkd.config.choices import OPTIMIZERS
from hkd.models.nonfinite import fused_where_possible


@dataclass(frozen=True)
class Optimization:
    """The optimiser and its schedule (the ``optim`` keys, as plain values)."""

    name: str = "adamw"
    lr: float = 0.002
    weight_decay: float = 0.0001
    scheduler: str = "cosine"
    warmup_epochs: int = 0
    decay_norm_and_bias: bool = False

    @property
    def per_step(self) -> bool:
        """Whether the schedule needs the total number of optimiser steps."""
        return self.scheduler == "cosine_per_step"




def adamw(params: list, optim: Optimization) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay,
                             **fused_where_possible(params))


def adam(params: list, optim: Optimization) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay,
                            **fused_where_possible(params))


def sgd(params: list, optim: Optimization) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=optim.lr, momentum=0.9, weight_decay=optim.weight_decay,
                           **fused_where_possible(params))


class CosineWithWarmup:
    """Linear warm-up then cosine decay to 0, as a picklable LambdaLR factor."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = int(warmup), max(1, int(total))

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1 + torch.cos(torch.tensor(min(1.0, progress)) * torch.pi).item())


def parameter_groups(model: torch.nn.Module, optim: Optimization) -> list[dict]:
    """The trainable parameters, the timm way: no weight decay on norm weights and biases (and a
    model's own ``no_weight_decay()`` list, e.g. a ViT's position embedding), unless
    ``optim.decay_norm_and_bias``."""
    if optim.decay_norm_and_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    skip = set()
    for name, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            skip |= {f"{name}.{key}" if name else key for key in module.no_weight_decay()}
    return param_groups_weight_decay(model, optim.weight_decay, no_weight_decay_list=skip)


def configure_optimization(model: torch.nn.Module, optim: Optimization, max_epochs: int,
                           total_steps: int) -> torch.optim.Optimizer | dict:
    """What ``LightningModule.configure_optimizers`` returns for these settings."""
    optimizer = OPTIMIZERS[optim.name](parameter_groups(model, optim), optim)
    if optim.scheduler == "none":
        return optimizer
    if optim.scheduler == "pneuknownet_cosine":
        # PneuKnowNet's code builds CosineAnnealingLR(T_max = epochs - 1) but steps it after every
        # batch: the rate runs through a full cosine every 2 (epochs - 1) steps, oscillating many
        # times per epoch. Reproduced as is (no warm-up) for faithful re-runs.
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, max_epochs - 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
    per_step = optim.per_step
    epochs = max(1, max_epochs)
    total = total_steps if per_step else epochs
    warmup = optim.warmup_epochs * (total // epochs if per_step else 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, CosineWithWarmup(warmup, total))
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule, "interval": "step" if per_step else "epoch"}}
