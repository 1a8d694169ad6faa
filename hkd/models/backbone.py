"""timm backbones of every family, and one spatial feature map (B, C, h, w) for each.

CNNs (ResNet, ConvNeXt, EfficientNet, DenseNet, ...) give it from ``forward_features``;
channels-last models (Swin) give ``forward_features`` permuted to NCHW. Token models (ViT and its
relatives) give the patch tokens *entering* the last block, reshaped to their grid: the class
token reads them in that block's attention, so the map lies on the logits' path. (The last
block's output would not: a class-token head never reads its patch tokens.) The map is put back
into the forward pass, so Grad-CAM, HKD's feature distillation and the guided losses all see a
map that the logits depend on. ``features_and_logits`` returns it with the logits of one pass."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn

log = logging.getLogger(__name__)

class PretrainedWeightsError(ValueError):
    pass


@dataclass(frozen=True)
class BackboneSpec:
    """Which timm network to build (the ``model`` keys that shape it, as plain values)."""

    backbone: str
    pretrained: bool | str = False  # false, true (timm's hub) or a local weights file
    output_stride: int | None = None
    drop_rate: float = 0.0
    kwargs: dict = field(default_factory=dict)  # more timm.create_model arguments


def feature_layout(net: nn.Module) -> str:
    """``nchw`` (CNNs), ``tokens`` (ViT-like) or ``nhwc`` (Swin-like)."""
    if hasattr(net, "num_prefix_tokens") and hasattr(net, "blocks"):
        return "tokens"
    return "nhwc" if getattr(net, "output_fmt", "NCHW") == "NHWC" else "nchw"


def accepted_arguments(name: str, required: dict) -> set[str] | None:
    """The keyword arguments the network class behind timm's ``name`` takes (None: any, it has
    ``**kwargs``), read from its constructor's signature. The probe is built on the meta device:
    no memory, no weights, no random numbers drawn."""
    try:
        with torch.device("meta"):
            probe = timm.create_model(name, **required)
    except (NotImplementedError, RuntimeError):  # a model whose construction needs real tensors
        with torch.random.fork_rng(devices=[]):
            probe = timm.create_model(name, **required)
    parameters = inspect.signature(type(probe).__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return set(parameters)


def create(name: str, required: dict, optional: dict, **pretrained) -> nn.Module:
    """``timm.create_model`` with the ``optional`` arguments its network does not take left out."""
    accepted = accepted_arguments(name, required) if optional else None  # no probe when nothing is optional
    dropped = [key for key in optional if accepted is not None and key not in accepted]
    if "output_stride" in dropped:
        log.warning("model.output_stride=%s: %s has no output stride option; it keeps its own "
                    "(its feature map is coarser)", optional["output_stride"], name)
    kept = {key: value for key, value in optional.items() if key not in dropped}
    return timm.create_model(name, **required, **kept, **pretrained)


def build_backbone(model: BackboneSpec, num_classes: int, in_chans: int, image_size: int | None = None,
                   ) -> nn.Module:
    """A timm model. ``model.pretrained`` is false, true (timm's hub) or a local weights file
    (a state dict as saved by timm/torch, .pth/.bin/.safetensors). From a file, the stem is adapted
    to ``in_chans`` and a classifier of another size is dropped, as timm does for hub weights.
    ``model.kwargs`` go to ``timm.create_model`` as they are; ``model.output_stride`` and the image
    size (for ViTs and Swins) only to the models that take them."""
    required = {"num_classes": num_classes, "in_chans": in_chans, "drop_rate": model.drop_rate,
                **dict(model.kwargs or {})}
    candidates = (("output_stride", model.output_stride), ("img_size", image_size))
    optional = {key: value for key, value in candidates if value is not None and key not in required}
    pretrained = model.pretrained
    if isinstance(pretrained, str) and pretrained.lower() not in ("true", "false"):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise PretrainedWeightsError(f"model.pretrained={pretrained}: no such weights file")
        try:
            return create(model.backbone, required, optional, pretrained=True,
                          pretrained_cfg_overlay={"file": str(path.resolve())})
        except (RuntimeError, KeyError) as error:
            raise PretrainedWeightsError(f"model.pretrained={path}: these weights do not fit "
                                         f"{model.backbone}: {error}") from error
    try:
        return create(model.backbone, required, optional, pretrained=pretrained in (True, "true"))
    except RuntimeError as error:
        if "unknown model" in str(error).lower():
            raise ValueError(f"model.backbone={model.backbone} is not a timm model") from error
        raise


def allow_double_backward(net: nn.Module) -> None:
    """Use plain attention where a model has fused attention kernels (ViT, Swin): those have no
    second derivative, which input-gradient and differentiable-CAM losses need."""
    for module in net.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False


def token_grid(net: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """The patch grid (h, w) of a token model for input ``x``."""
    embed = net.patch_embed
    if hasattr(embed, "dynamic_feat_size"):
        return tuple(embed.dynamic_feat_size(tuple(x.shape[-2:])))
    return tuple(embed.grid_size)


def token_features_and_logits(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ViT-like model's map: the second-to-last block's patch tokens, reshaped to (B, C, h, w)
    and fed back as that block's output, so the last block and the head read the map itself."""
    if len(net.blocks) < 2:
        raise ValueError("a token model needs at least 2 blocks for a feature map on the logits' path")
    prefix, (height, width) = net.num_prefix_tokens, token_grid(net, x)
    captured: list[torch.Tensor] = []

    def as_map(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        patches = output[:, prefix:]
        grid = patches.transpose(1, 2).reshape(len(output), patches.shape[-1], height, width)
        captured.append(grid)
        return torch.cat([output[:, :prefix], grid.flatten(2).transpose(1, 2)], dim=1)

    handle = net.blocks[-2].register_forward_hook(as_map)
    try:
        logits = net.forward_head(net.forward_features(x))
    finally:
        handle.remove()
    return captured[0], logits


def features_and_logits(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The spatial feature map (B, C, h, w) and the logits, in one forward pass."""
    layout = feature_layout(net)
    if layout == "tokens":
        return token_features_and_logits(net, x)
    features = feature_map(net, x)
    return features, net.forward_head(features.permute(0, 2, 3, 1) if layout == "nhwc" else features)


def feature_map(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Only the feature map (e.g. a frozen teacher's); a CNN's head is not run."""
    layout = feature_layout(net)
    if layout == "tokens":
        return token_features_and_logits(net, x)[0]
    features = net.forward_features(x)
    return features.permute(0, 3, 1, 2) if layout == "nhwc" else features
