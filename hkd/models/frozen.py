"""A frozen network for inference only: every BatchNorm that just normalises a convolution's
output folded into that convolution (the same function, one layer less per pair).

HKD's teacher is frozen and runs in eval mode, where BatchNorm is a fixed affine map per channel:
``bn(conv(x)) == conv'(x)`` with the scale and shift moved into the convolution's weights and
bias. The pairs are found by running the network once (forward hooks), which works for any timm
model without tracing its code; a fold is kept only when the folded copy computes the same map as
the original on that input, so a network where a convolution's output is also used elsewhere
keeps its BatchNorms. The copy runs channels-last (NHWC), which the CPU's oneDNN convolutions
compute faster than NCHW (``make bench``'s teacher-pass row)."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from hkd.models.backbone import feature_map

log = logging.getLogger(__name__)


def conv_bn_pairs(net: nn.Module, run: Callable[[nn.Module], torch.Tensor]) -> list[tuple[str, str]]:
    """The (convolution, BatchNorm) module names where the BatchNorm reads the convolution's output."""
    names = {module: name for name, module in net.named_modules()}
    made_by: dict[int, str] = {}
    outputs: list[torch.Tensor] = []  # kept alive, so no id is reused during the pass
    pairs: list[tuple[str, str]] = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if type(module) is nn.Conv2d:
            made_by[id(output)] = names[module]
            outputs.append(output)
        elif type(module) is nn.BatchNorm2d and inputs and id(inputs[0]) in made_by:
            pairs.append((made_by[id(inputs[0])], names[module]))

    handles = [module.register_forward_hook(record) for module in names]
    try:
        with torch.no_grad():
            run(net)
    finally:
        for handle in handles:
            handle.remove()
    return pairs


def fold_batch_norms(net: nn.Module, run: Callable[[nn.Module], torch.Tensor]) -> nn.Module:
    """A copy of the eval-mode ``net`` with its conv -> BatchNorm pairs folded, checked against
    ``net`` on ``run`` (a forward pass on a real batch); ``net`` itself when there is nothing to
    fold or the copy differs."""
    if net.training:
        raise ValueError("fold_batch_norms folds the running statistics of an eval-mode network")
    folded = copy.deepcopy(net)
    pairs = conv_bn_pairs(folded, run)
    normalisers = [bn for _, bn in pairs]
    if not pairs or len(set(normalisers)) != len(normalisers):
        return net
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        replace(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        replace(folded, bn_name, nn.Identity())
    with torch.no_grad():
        expected, found = run(net), run(folded)
    if not torch.allclose(found, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()) + 1e-6):
        log.info("the folded network differs from the original; keeping its BatchNorms")
        return net
    return folded


def replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent), child, module)


def channels_last_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with channels-last weights, for passes that feed it channels-last input
    (``net`` itself, e.g. a model in training, keeps its layout)."""
    return copy.deepcopy(net).to(memory_format=torch.channels_last)


def inference_copy(net: nn.Module, run: Callable[[nn.Module], torch.Tensor]) -> nn.Module:
    """A copy of the eval-mode ``net`` for inference only: BatchNorms folded where that keeps its
    function (``fold_batch_norms``), weights channels-last; ``net`` itself is untouched."""
    folded = fold_batch_norms(net, run)
    return channels_last_copy(net) if folded is net else folded.to(memory_format=torch.channels_last)


class FrozenFeatures:
    """A frozen network's feature map in fp32, outside any autocast region (under AMP a
    distillation target keeps full precision; ``autocast=True`` runs it in the caller's autocast
    region instead and returns fp32, faster on a GPU), computed by a copy with its BatchNorms folded and
    channels-last weights (``inference_copy``), made per device at first use. Not a module: the
    copy is neither trained nor saved. Loading new weights into the network (its own
    ``load_state_dict`` or a parent's, e.g. a resumed checkpoint) drops the copies, so they are
    folded anew. ``make_copy(net, run)`` makes the copy (``inference_copy``; the equivalence tests
    pass ``fold_batch_norms`` or a plain channels-last copy to check each speed path alone)."""

    def __init__(self, net: nn.Module,
                 make_copy: Callable[[nn.Module, Callable[[nn.Module], torch.Tensor]], nn.Module]
                 = inference_copy, autocast: bool = False) -> None:
        self.net = net
        self.make_copy = make_copy
        self.autocast = autocast
        self.folded: dict[str, nn.Module] = {}
        net.register_load_state_dict_post_hook(self.weights_loaded)

    def weights_loaded(self, net: nn.Module, incompatible_keys) -> None:
        self.folded.clear()

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outside = contextlib.nullcontext() if self.autocast else torch.autocast(x.device.type, enabled=False)
        with outside:
            x = x if self.autocast else x.float()
            device = str(x.device)
            if device not in self.folded:
                with torch.autocast(x.device.type, enabled=False):  # folded and checked in fp32
                    self.folded[device] = self.make_copy(self.net, lambda net: feature_map(net, x.float()))
            features = feature_map(self.folded[device], x.contiguous(memory_format=torch.channels_last))
            return features.float().contiguous()  # the usual layout for the loss and the feature cache
