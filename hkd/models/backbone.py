"""timm backbones: one forward pass gives the pre-pooling feature map and the logits."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from omegaconf import DictConfig
from torch import nn


class PretrainedWeightsError(ValueError):
    pass


def build_backbone(model: DictConfig, num_classes: int, in_chans: int) -> nn.Module:
    """A timm model. ``model.pretrained`` is false, true (timm's hub) or a local weights file
    (a state dict as saved by timm/torch, .pth/.bin/.safetensors). From a file, the stem is adapted
    to ``in_chans`` and a classifier of another size is dropped, as timm does for hub weights."""
    kwargs: dict = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": model.drop_rate}
    if model.output_stride is not None:
        kwargs["output_stride"] = model.output_stride
    pretrained = model.pretrained
    if isinstance(pretrained, str) and pretrained.lower() not in ("true", "false"):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"model.pretrained={pretrained}: no such weights file")
        try:
            return timm.create_model(model.backbone, pretrained=True,
                                     pretrained_cfg_overlay={"file": str(path.resolve())}, **kwargs)
        except (RuntimeError, KeyError) as error:
            raise PretrainedWeightsError(f"model.pretrained={path}: these weights do not fit "
                                         f"{model.backbone}: {error}") from error
    try:
        return timm.create_model(model.backbone, pretrained=pretrained in (True, "true"), **kwargs)
    except RuntimeError as error:
        if "unknown model" in str(error).lower():
            raise ValueError(f"model.backbone={model.backbone} is not a timm model") from error
        raise


def features_and_logits(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The last pre-pooling feature map (B, C, h, w) and the logits, in one pass."""
    features = net.forward_features(x)
    return features, net.forward_head(features)
