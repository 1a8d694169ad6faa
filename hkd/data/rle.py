"""Masks in COCO's run-length encoding (pycocotools): what CVAT's COCO export and the review page
write, and how ``edits.json`` stores IMIL's masks. ``{"size": [height, width], "counts": str}``.
(Label Studio's brush masks use an encoding of their own: ``hkd.data.ls_rle``.)"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from hkd.errors import InputError


def encode(mask: np.ndarray) -> dict:
    """A (H, W) mask as compressed COCO RLE (JSON-safe)."""
    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(rle: dict) -> np.ndarray:
    """Compressed COCO RLE -> (H, W) bool mask."""
    return coco_mask.decode({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}).astype(bool)


def from_segmentation(segmentation: dict, where: str) -> dict:
    """A COCO ``segmentation`` given as RLE (compressed ``counts`` string or uncompressed list)
    as compressed RLE, checked: a size of two positive whole numbers, counts that fill it."""
    size = segmentation.get("size")
    counts = segmentation.get("counts")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise InputError(f"{where}: an RLE segmentation needs 'size': [height, width]")
    height, width = size
    try:
        if isinstance(counts, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
                raise ValueError("uncompressed counts must be whole numbers >= 0")
            if sum(counts) != height * width:
                raise ValueError(f"the counts cover {sum(counts)} pixels, not {height * width}")
            rle = coco_mask.frPyObjects({"size": size, "counts": counts}, height, width)
        elif isinstance(counts, str):
            rle = {"size": size, "counts": counts.encode("ascii")}
            coco_mask.area(rle)  # raises on a malformed string
        else:
            raise ValueError("'counts' must be a string or a list of whole numbers")
        compressed = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
        empty = not decode(compressed).any()  # also raises when the counts do not fit the size
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise InputError(f"{where}: invalid RLE segmentation: {error}") from error
    if empty:
        raise InputError(f"{where}: the RLE mask is empty")
    return compressed


def bbox(rle: dict) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the mask's pixels."""
    x, y, w, h = coco_mask.toBbox({"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")})
    return float(x), float(y), float(w), float(h)
