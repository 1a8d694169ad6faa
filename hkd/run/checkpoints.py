"""Checkpoints that survive crashes (written atomically, checked before a resume uses them), and
loading a trained classifier back from one."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import OmegaConf

from hkd.atomic import atomic_write
from hkd.methods import Method
from hkd.models.classifier import ClassifierModule
from hkd.run.build import build_module

log = logging.getLogger(__name__)


# A checkpoint ``is_good_checkpoint`` has read and found good, kept until Lightning asks for it:
# resuming reads the file once. Keyed by path, size and modification time, so a changed file is
# read again.
_VERIFIED: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _file_key(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, but into a temporary file renamed into place: a run killed while
    saving leaves the previous checkpoint intact instead of a truncated one. Loading hands over
    the checkpoint a resume has just verified instead of reading it again."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
        atomic_write(path, lambda tmp: _save(checkpoint, tmp))

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        verified = _VERIFIED.pop(Path(path).resolve(), None)
        if map_location is None:  # as Lightning asks: tensors on the CPU, as they were verified
            if verified is not None and Path(path).is_file() and verified[0] == _file_key(Path(path)):
                return verified[1]
            return super().load_checkpoint(path, weights_only=weights_only)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)


def _save(checkpoint: dict[str, Any], path: Path) -> None:
    # serialise in memory first (as Lightning does), so a full disk raises a plain OSError
    # rather than torch's zip writer's RuntimeError
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    path.write_bytes(buffer.getbuffer())


def is_good_checkpoint(path: Path) -> bool:
    """True when the file loads and every floating-point weight is finite; a good one is kept
    for ``AtomicCheckpointIO.load_checkpoint`` (the resume that follows reads it from memory)."""
    try:
        key = _file_key(path)
        state = torch.load(path, map_location="cpu", weights_only=False)
        weights = state["state_dict"]
    except Exception:  # truncated, corrupt or not a Lightning checkpoint
        return False
    good = all(torch.isfinite(value).all() for value in weights.values()
               if torch.is_tensor(value) and value.is_floating_point())
    if good:
        _VERIFIED.clear()  # only the one about to be resumed from
        _VERIFIED[Path(path).resolve()] = (key, state)
    return good


def resume_checkpoint(folder: Path) -> Path | None:
    """The checkpoint to continue from: ``last.ckpt``, or when that is damaged (half-written,
    non-finite weights) the newest other good checkpoint in the folder; None when there is none."""
    if not folder.is_dir():
        return None
    for stale in folder.glob(".*.ckpt.*"):  # a save that a crash interrupted before its rename
        log.warning("removing %s, an unfinished checkpoint write", stale)
        stale.unlink(missing_ok=True)
    others = sorted((p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in [folder / "last.ckpt", *others]:
        if not candidate.is_file():
            continue
        if is_good_checkpoint(candidate):
            return candidate
        log.warning("checkpoint %s is damaged (half-written or non-finite weights); skipping it", candidate)
    return None


def load_classifier(checkpoint: str | Path, map_location: str | torch.device = "cpu",
                    with_method: bool = True) -> ClassifierModule:
    """A trained classifier from its checkpoint (read once), in eval mode, never needing the
    ``model.pretrained`` file (every weight is in the checkpoint). ``with_method``: with the training
    method it was trained with, rebuilt from the checkpoint's configuration; without it, plain
    cross-entropy and the method's weights (an HKD teacher) left behind, for deployment."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hparams, state = saved["hyper_parameters"], saved["state_dict"]
    cfg = OmegaConf.create(hparams["cfg"])
    cfg.model.pretrained, cfg.model.compile = False, False
    teacher = hparams.get("teacher", hparams.get("input_key") == "roi")  # older checkpoints: by input
    method = None
    if teacher or not with_method:  # a stage-1 teacher, or inference: plain cross-entropy on its input
        method = Method(hparams.get("input_key", "image"))
        state = {k: v for k, v in state.items() if not k.startswith("method.")}
    module = build_module(cfg, hparams["classes"], method, hparams.get("class_weights"), teacher=teacher)
    module.load_state_dict(state)
    return module.to(map_location).eval()
