"""Every timm family the README lists, as tiny instances (32 px input), and their classifier modules."""

from omegaconf import OmegaConf

from hkd.models.classifier import ClassifierModule
from hkd.run.build import build_module

FAMILIES = {  # name -> overrides of a tiny instance (32 px input)
    "resnet": ["model.backbone=test_resnet"],
    "convnext": ["model.backbone=test_convnext"],
    "efficientnet": ["model.backbone=test_efficientnet"],
    "densenet": ["model.backbone=densenet121", "model.kwargs={growth_rate: 8, block_config: [2, 2, 2, 2]}",
                 "model.output_stride=null"],
    "vit": ["model.backbone=test_vit", "model.kwargs={patch_size: 8}"],
    "swin": ["model.backbone=swin_tiny_patch4_window7_224",
             "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 1], window_size: 4}"],
}
MAP_SIZE = {"resnet": 4, "convnext": 4, "efficientnet": 4, "densenet": 1, "vit": 4, "swin": 4}


def module_for(cfg, method: str = "baseline") -> ClassifierModule:
    cfg = OmegaConf.merge(cfg, {"method": {"name": method}})
    return build_module(cfg, ["a", "b", "c", "d"])
