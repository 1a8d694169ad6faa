"""Compact, JSON-safe storage of edit masks."""

from __future__ import annotations

import base64

import numpy as np


def encode_mask(mask: np.ndarray) -> dict:
    mask = np.asarray(mask, dtype=bool)
    packed = np.packbits(mask.reshape(-1))
    return {"shape": list(mask.shape), "bits": base64.b64encode(packed.tobytes()).decode()}


def decode_mask(data: dict) -> np.ndarray:
    shape = tuple(data["shape"])
    bits = np.frombuffer(base64.b64decode(data["bits"]), dtype=np.uint8)
    return np.unpackbits(bits)[: int(np.prod(shape))].reshape(shape).astype(bool)
