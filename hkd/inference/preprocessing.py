"""A run's preprocessing, read from its configuration: exactly what training did to an image file
(decode, DICOM windowing, 16-bit scaling, EXIF rotation, square resize, channels, the cache's
float16 rounding, normalisation), for any file, outside the training pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from hkd.data.decode import decode_image, resize

DECODING = ("PNG/JPEG/TIFF via PIL with EXIF rotation; 8-bit divided by 255, 16-bit and 32-bit min-max "
            "scaled per image; DICOM through the modality LUT (rescale slope/intercept), then the VOI "
            "LUT or window centre/width, MONOCHROME1 inverted, scaled to [0, 1]; grayscale repeated to "
            "the channels; bilinear resize with antialiasing to a square; rounded to float16")


@dataclass(frozen=True)
class Preprocessing:
    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: DictConfig, classes: list[str]) -> Preprocessing:
        return cls(int(cfg.data.image_size), int(cfg.data.channels), tuple(map(float, cfg.data.mean)),
                   tuple(map(float, cfg.data.std)), tuple(classes))

    def pixels(self, path: str | Path) -> np.ndarray:
        """The image as training's cache holds it: (C, S, S) in [0, 1]."""
        array = resize(decode_image(Path(path), self.channels, str(path)), self.image_size).clip(0, 1)
        return array.astype(np.float16).astype(np.float32)

    def normalize(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (torch.as_tensor(pixels, dtype=torch.float32) - mean) / std

    def load(self, path: str | Path) -> torch.Tensor:
        """The model's input for one file: (C, S, S), normalised."""
        return self.normalize(self.pixels(path))

    def to_json(self) -> dict:
        """What a deployment needs to feed the exported model."""
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std), "classes": list(self.classes),
                "input_shape": ["batch", self.channels, self.image_size, self.image_size],
                "decoding": DECODING}
