"""Every annotation-guided method trains a real backbone: its loss reaches every weight."""

import torch

from hkd.methods.guided import GUIDED_METHODS
from hkd.run.build import build_datamodule, build_module


def test_every_method_trains_a_real_backbone_with_gradients(tiny):
    for name in GUIDED_METHODS:
        cfg = tiny(f"method.name={name}")
        datamodule = build_datamodule(cfg)
        datamodule.prepare_data()
        datamodule.setup()
        module = build_module(cfg, datamodule.classes)
        batch = next(iter(datamodule.train_dataloader()))
        out = module.method.training_loss(module, batch)
        out["loss"].backward()
        grads = [p.grad for p in module.net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
