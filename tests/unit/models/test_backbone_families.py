"""Every timm family the README lists, as a tiny instance: the feature map lies on the logits' path
(what Grad-CAM needs), the guided losses backpropagate, and Grad-CAM is a real map."""

import pytest
import torch
from backbone_families import FAMILIES, MAP_SIZE, module_for

from hkd.config import load_config
from hkd.explanations.cam import explain_batch
from hkd.methods.guided import GUIDED_METHODS
from hkd.models.backbone import features_and_logits


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_feature_map_is_nchw_on_the_logits_path_and_every_guided_loss_backpropagates(family):
    torch.manual_seed(0)
    cfg = load_config("quickstart", ["data.image_size=32", *FAMILIES[family]])
    module = module_for(cfg).eval()
    x = torch.randn(3, 1, 32, 32)
    features, logits = features_and_logits(module.net, x)
    gradient, = torch.autograd.grad(logits[:, 0].sum(), features, retain_graph=True)
    assert gradient.abs().sum() > 0  # the map lies on the logits' path (what Grad-CAM needs)
    size = MAP_SIZE[family]
    assert features.shape[0] == 3 and features.shape[-2:] == (size, size) and logits.shape == (3, 4)
    with torch.no_grad():
        assert torch.allclose(module.net(x), logits, atol=1e-5)  # the model's own forward
    probabilities, cams = explain_batch(module, {"image": x, "label": torch.tensor([0, 1, 2])})
    assert cams.shape == (3, 32, 32) and torch.isfinite(cams).all() and float(cams.amax()) <= 1
    prior = torch.zeros(3, 1, 32, 32)
    prior[:, :, 8:24, 8:24] = 1
    batch = {"image": x, "label": torch.tensor([0, 1, 2]), "prior": prior,
             "has_prior": torch.ones(3, dtype=torch.bool)}
    for name in sorted(GUIDED_METHODS):
        module = module_for(cfg, name).train()
        out = module.method.training_loss(module, batch)
        out["loss"].backward()
        assert torch.isfinite(out[name]) and out[name] >= 0, (family, name)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.net.parameters())
