"""Optimiser parameter groups the timm way: no weight decay on norm weights, biases and a model's
own no-decay list (a ViT's position embedding)."""

import pytest

from hkd.models.backbone import BackboneSpec, build_backbone
from hkd.models.optim import Optimization, configure_optimization


def groups(backbone: str, **optim):
    net = build_backbone(BackboneSpec(backbone), 3, 1, 32)
    settings = Optimization(**{"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "scheduler": "none",
                               "warmup_epochs": 0, "decay_norm_and_bias": False, **optim})
    optimizer = configure_optimization(net, settings, max_epochs=1, total_steps=1)
    names = {id(p): n for n, p in net.named_parameters()}
    return net, {group["weight_decay"]: [names[id(p)] for p in group["params"]]
                 for group in optimizer.param_groups}


def test_norms_and_biases_are_not_decayed():
    net, by_decay = groups("test_resnet")
    assert set(by_decay) == {0.0, 0.05}
    assert any(name.endswith("bias") for name in by_decay[0.0])
    assert any("bn" in name for name in by_decay[0.0])
    assert all(net.get_parameter(name).ndim == 1 for name in by_decay[0.0])  # norm weights and biases
    assert all(net.get_parameter(name).ndim > 1 for name in by_decay[0.05])  # convolutions, linear
    assert len(by_decay[0.0]) + len(by_decay[0.05]) == len(list(net.parameters()))


def test_a_vits_position_embedding_is_not_decayed_and_the_old_behaviour_is_one_group():
    _, by_decay = groups("test_vit")
    assert "pos_embed" in by_decay[0.0] and "cls_token" in by_decay[0.0]
    _, everything = groups("test_resnet", decay_norm_and_bias=True)
    assert list(everything) == [0.05]


def test_pneuknownet_cosine_is_stepped_every_batch_with_t_max_epochs_minus_one():
    """The authors' CosineAnnealingLR(T_max = epochs − 1), stepped per batch: with 5 epochs the
    rate reaches its minimum after 4 *batches* and is back at the start after 8."""
    import math

    import torch

    net = torch.nn.Linear(2, 2)
    settings = Optimization(name="adam", lr=1e-4, weight_decay=0.0, scheduler="pneuknownet_cosine")
    config = configure_optimization(net, settings, max_epochs=5, total_steps=500)
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    rates = []
    for _ in range(9):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [1e-4 * (1 + math.cos(math.pi * step / 4)) / 2 for step in range(9)]
    assert rates == [pytest.approx(value, abs=1e-12) for value in expected]
    assert rates[4] == pytest.approx(0.0, abs=1e-12) and rates[8] == pytest.approx(1e-4)
