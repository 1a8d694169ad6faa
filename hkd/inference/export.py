"""``hkd export RUN_DIR --format onnx|torchscript``: the student as one file (``model.onnx`` or
``model.pt``) plus a JSON beside it (``model.onnx.json``, ``model.pt.json``) with everything a
deployment needs (input size, channels, mean/std, classes, the decoding)."""

from __future__ import annotations

from pathlib import Path

import torch

from hkd.atomic import atomic_write, atomic_write_json
from hkd.errors import ConfigError
from hkd.inference.model import best_checkpoint, load_model

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}


class Logits(torch.nn.Module):
    """The deployed network: a normalised image batch (B, C, S, S) in, class logits out (divided
    by the run's temperature, so their softmax is the calibrated probability)."""

    def __init__(self, net: torch.nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("temperature", torch.tensor(float(temperature)))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image) / self.temperature


def write_onnx(network: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(network, (example,), dynamo=True, input_names=["image"],
                                output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False)
    atomic_write(path, lambda tmp: program.save(str(tmp)))


def write_torchscript(network: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    traced = torch.jit.trace(network, example)
    atomic_write(path, lambda tmp: traced.save(str(tmp)))


def export_model(run_dir: str | Path, fmt: str, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write the model file and its JSON into ``out_dir`` (default ``RUN_DIR/export``)."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt} is not one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    model, preprocessing = load_model(run_dir, device="cpu")
    temperature = float(model.temperature)
    network = Logits(model.net, temperature).eval()
    example = torch.zeros(2, preprocessing.channels, preprocessing.image_size, preprocessing.image_size)
    out_dir = Path(out_dir) if out_dir else run_dir / "export"
    path = out_dir / FORMATS[fmt]
    (write_onnx if fmt == "onnx" else write_torchscript)(network, example, path)
    built_by = model.run_config
    description = {"format": fmt, "file": path.name, "input": "image", "output": "logits",
                   "run": str(run_dir), "checkpoint": best_checkpoint(run_dir).name,
                   "backbone": built_by["model"]["backbone"], "method": built_by["method"]["name"],
                   "parameters": sum(p.numel() for p in network.parameters()),
                   "temperature": temperature,  # inside the file: the logits are already divided by it
                   "calibrated": temperature != 1.0,
                   **preprocessing.to_json()}
    return path, atomic_write_json(out_dir / f"{path.name}.json", description)
