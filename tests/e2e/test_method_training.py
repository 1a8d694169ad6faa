"""Every annotation-guided method trains a real backbone: its loss reaches every weight."""

import torch
from omegaconf import OmegaConf

from hkd.data.datamodule import ChestXrayDataModule
from hkd.methods import build_method
from hkd.methods.guided import GUIDED_METHODS
from hkd.models.classifier import ClassifierModule


def test_every_method_trains_a_real_backbone_with_gradients(tiny):
    for name in GUIDED_METHODS:
        cfg = tiny(f"method.name={name}")
        datamodule = ChestXrayDataModule(cfg)
        datamodule.prepare_data()
        datamodule.setup()
        module = ClassifierModule(OmegaConf.to_container(cfg), datamodule.classes,
                                  build_method(cfg, len(datamodule.classes), 1))
        batch = next(iter(datamodule.train_dataloader()))
        out = module.method.training_loss(module, batch)
        out["loss"].backward()
        grads = [p.grad for p in module.net.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
