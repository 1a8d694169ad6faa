"""GPU efficiency options, exercised on the CPU: mixed precision, channels-last, torch.compile,
loader workers with pinned memory."""

import json

import pytest
import torch
from conftest import logged_test_metrics

from hkd.run.build import build_datamodule, build_module
from hkd.run.experiment import run_experiment


def test_bf16_channels_last_and_workers_train_end_to_end(tiny):
    cfg = tiny("trainer.precision=bf16-mixed", "model.channels_last=true", "data.num_workers=2",
               "data.pin_memory=true", "data.persistent_workers=true")
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    assert loader.num_workers == 2 and loader.pin_memory and loader.persistent_workers
    module = build_module(cfg, datamodule.classes)
    convolutions = [p for p in module.net.parameters() if p.dim() == 4]
    assert convolutions and all(p.is_contiguous(memory_format=torch.channels_last) for p in convolutions)
    run_dir = run_experiment(cfg)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test"]["accuracy"] == pytest.approx(logged_test_metrics(run_dir)["accuracy"])
    assert (run_dir / "config.yaml").read_text().count("bf16-mixed") == 1


@pytest.mark.slow  # inductor compiles forward and backward graphs: minutes on a 2-core CPU
def test_compile_runs_the_compiled_pass(tiny):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    run_dir = run_experiment(tiny("model.compile=true", "explain.n_images=0"))
    assert (run_dir / "summary.json").is_file()
    assert counters["stats"]["unique_graphs"] >= 1  # the training pass went through torch.compile


