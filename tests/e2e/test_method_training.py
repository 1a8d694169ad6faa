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


def test_jtt_up_weights_exactly_the_first_models_training_errors(tiny):
    """method.name=jtt: the first model's errors on the unaugmented training images are the error
    set (kept in RUN_DIR/jtt/error_set.json and summary.json), and the final model's loss weights
    each of them by jtt.upweight."""
    import json

    import numpy as np
    import torch.nn.functional as F

    from hkd.run.checkpoints import load_classifier
    from hkd.run.experiment import run_experiment
    from hkd.run.jtt_pipeline import training_errors

    cfg = tiny("method.name=jtt", "jtt.epochs=1", "jtt.upweight=5", "trainer.max_epochs=2")
    run_dir = run_experiment(cfg)
    record = json.loads((run_dir / "jtt" / "error_set.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["jtt"]["error_set"] == len(record["error_rows"]) > 0 and summary["jtt"]["epochs"] == 1
    first = load_classifier(run_dir / "jtt" / "checkpoints" / "last.ckpt")
    datamodule = build_datamodule(cfg)
    assert record["error_rows"] == sorted(training_errors(first, datamodule).tolist())

    module = build_module(cfg, datamodule.classes)  # the final model's loss on one batch
    module.method.use_error_set(np.asarray(record["error_rows"]), len(datamodule.records))
    batch = next(iter(datamodule.train_dataloader()))
    out = module.method.training_loss(module, batch)
    weights = torch.tensor([5.0 if int(i) in record["error_rows"] else 1.0 for i in batch["idx"]])
    ce = F.cross_entropy(out["logits"], batch["label"], reduction="none")
    assert torch.allclose(out["loss"], (weights * ce).sum() / weights.sum())
