"""No non-finite step touches the weights, without a device sync per step.

Each training step notes on the device whether its loss is finite (no ``.item()``). Before the
optimizer step the gradients' total norm is checked, also on the device: after DDP's all-reduce
the gradients are the same on every rank, so every rank reaches the same verdict without another
collective. A fused optimizer (hkd's Adam, AdamW and SGD are built fused where the device allows)
takes that verdict as its ``found_inf`` input and skips the whole update on the device — weights,
moments and step count stay as they were, the way ``torch.amp.GradScaler`` skips a step. Other
optimizers fall back to a host check per step and drop the gradients of a bad step.

The host looks at the device's counters every ``training.nonfinite_check_every`` steps and before
each validation and epoch end (one all-reduce of a count under DDP), and then stops the run with
the first bad step's position and sample ids (``training.nonfinite_loss=stop``) or counts the
skipped steps (``skip``). So a bad step never changes the weights; with ``stop`` the run may take
up to ``nonfinite_check_every`` more (skipped or good) steps before it stops, and never writes a
checkpoint after a bad step without having stopped first.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training met a NaN/inf loss and ``training.nonfinite_loss=stop``."""


def supports_found_inf(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer skips an update on the device from its ``found_inf`` input."""
    return bool(optimizer.defaults.get("fused"))


def fused_where_possible(params: list) -> dict:
    """``fused=True`` for torch's Adam/AdamW/SGD when every parameter is a float tensor on a CPU
    or CUDA device (the fused kernels' domain), else nothing."""
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    ok = bool(tensors) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in tensors)
    return {"fused": True} if ok else {}


class NonFiniteGuard:
    """The device-side counters of one training run, and the host's look at them."""

    def __init__(self) -> None:
        self.device: torch.device | None = None
        self.reported = 0  # bad steps the host has already acted on

    def _start(self, device: torch.device, batch_size: int) -> None:
        self.device = device
        self.bad_steps = torch.zeros((), dtype=torch.long, device=device)
        self.first = torch.full((3,), -1, dtype=torch.long, device=device)  # step, epoch, batch
        self.first_ids = torch.full((batch_size,), -1, dtype=torch.long, device=device)
        self.pending = torch.zeros((), dtype=torch.bool, device=device)  # this step's losses so far
        self.pending_where = self.first.clone()
        self.pending_ids = self.first_ids.clone()

    def note_loss(self, loss: torch.Tensor, ids: torch.Tensor, step: int, epoch: int, batch: int) -> None:
        """Record (on the device) whether this (micro-)batch's loss is finite, and where it was."""
        if self.device != loss.device or len(ids) > len(self.first_ids):
            self._start(loss.device, max(len(ids), 1))
        bad = ~torch.isfinite(loss.detach()).all()
        where = torch.tensor([step, epoch, batch], dtype=torch.long)
        self.pending_where = where.to(loss.device, non_blocking=True)
        self.pending_ids = torch.full_like(self.first_ids, -1)
        self.pending_ids[:len(ids)] = ids.to(loss.device, torch.long)
        self.pending = self.pending | bad

    def guard_step(self, optimizer: torch.optim.Optimizer, count_gradients: bool = True) -> None:
        """Make the coming optimizer step a no-op when any gradient is non-finite, and count the
        step as bad when its loss was non-finite (or, with ``count_gradients``, a gradient was:
        off under a GradScaler, whose own overflow skips are routine)."""
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads or self.device is None:
            return
        found = ~torch.isfinite(torch.nn.utils.get_total_norm(grads))
        bad = self.pending | found if count_gradients else self.pending
        is_first = bad & (self.first[0] < 0)
        self.first = torch.where(is_first, self.pending_where, self.first)
        self.first_ids = torch.where(is_first, self.pending_ids, self.first_ids)
        self.bad_steps += bad.long()
        self.pending = torch.zeros_like(self.pending)
        if supports_found_inf(optimizer):
            optimizer.found_inf = found.float()  # the fused kernel skips the update on the device
        elif found.item():  # fallback: one host sync per step
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # the optimizer leaves parameters without gradients alone

    def new_bad_steps(self, reduce_sum) -> tuple[int, str]:
        """Bad steps since the last look (summed over ranks by ``reduce_sum``) and where the first
        one was; a host sync."""
        if self.device is None:
            return 0, ""
        total = int(reduce_sum(self.bad_steps.clone()).item())
        new, self.reported = total - self.reported, total
        if new <= 0:
            return 0, ""
        step, epoch, batch = self.first.tolist()
        ids = [i for i in self.first_ids.tolist() if i >= 0]
        where = (f"step {step} (epoch {epoch}, batch {batch}); samples idx {ids}" if step >= 0
                 else "a step on another rank")
        return new, where

    def act(self, reduce_sum, policy: str) -> int:
        """The host's look (``new_bad_steps``), acted on per ``training.nonfinite_loss``: with
        ``skip`` the new bad steps are counted (returned) and warned about; with ``stop`` a
        ``NonFiniteLossError`` (raised rather than stopping at the epoch's end: no checkpoint may
        be written from here on)."""
        new, where = self.new_bad_steps(reduce_sum)
        if not new:
            return 0
        if policy == "skip":
            log.warning("non-finite loss or gradients in %d step(s), first at %s: those steps were "
                        "skipped", new, where)
            return new
        raise NonFiniteLossError(f"non-finite loss or gradients at {where} ({new} step(s) skipped; "
                                 "the weights never took a non-finite step)")
