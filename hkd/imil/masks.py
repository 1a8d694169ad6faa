"""JSON-safe storage of edit masks: COCO's compressed run-length encoding (``{"size", "counts"}``),
readable by pycocotools and every tool that reads COCO; the packed-bits encoding of older
``edits.json`` files (``{"shape", "bits"}``) still loads."""

from __future__ import annotations

import base64

import numpy as np

from hkd.data.rle import decode, encode


def encode_mask(mask: np.ndarray) -> dict:
    return encode(np.asarray(mask, dtype=bool))


def decode_mask(data: dict) -> np.ndarray:
    if "counts" in data:
        return decode(data)
    shape = tuple(data["shape"])  # the encoding before version 2
    bits = np.frombuffer(base64.b64decode(data["bits"]), dtype=np.uint8)
    return np.unpackbits(bits)[: int(np.prod(shape))].reshape(shape).astype(bool)
