"""Decode any image file (PNG, JPEG, 16-bit, DICOM) into float arrays, resize them, and
rasterise annotated regions: what the cache stores, and what any picture shown to a person uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from hkd.data.dicom import decode_dicom, is_dicom
from hkd.data.image_record import Region
from hkd.data.rle import decode as decode_rle
from hkd.errors import InputError


def decode_image(path: Path, channels: int, where: str = "") -> np.ndarray:
    """Any PIL-readable or DICOM image as float32 (C, H, W) in [0, 1]; EXIF rotation applied.

    8-bit images are divided by 255; 16-bit and 32-bit ones are min-max scaled (their bit depth
    in use varies by scanner); DICOM as in :func:`hkd.data.dicom.decode_dicom`.
    """
    if is_dicom(path):
        return _to_channels(decode_dicom(path, where), channels)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
    except Exception as error:  # PIL raises many types for broken files
        raise InputError(f"{where or path}: cannot decode image {path}: {error}") from error
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        if not np.isfinite(array).all():
            raise InputError(f"{where or path}: image {path} has NaN or infinite pixel values")
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low) if high > low else np.zeros_like(array)
        return _to_channels(array, channels)
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _to_channels(gray: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) grayscale to (channels, H, W)."""
    return np.repeat(gray[None], channels, axis=0) if channels == 3 else gray[None]


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize a (C, H, W) float array to (C, size, size) with antialiasing."""
    return np.stack([np.asarray(Image.fromarray(channel).resize((size, size), Image.BILINEAR,
                                                                reducing_gap=None))
                     for channel in array.astype(np.float32)])


def rasterize(regions: list[Region], width: int, height: int, size: int) -> np.ndarray:
    """The union of the regions as a (size, size) uint8 mask (1 inside); masks (RLE) are resized
    with nearest neighbours, like every mask."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    sx, sy = size / width, size / height
    resized_masks = []
    for region in regions:
        if region.rle is not None:
            full = Image.fromarray(decode_rle(region.rle_dict()).astype(np.uint8))
            resized_masks.append(np.asarray(full.resize((size, size), Image.NEAREST), dtype=np.uint8))
            continue
        points = [(x * sx, y * sy) for x, y in region.polygon]
        draw.polygon(points, fill=1, outline=1)
    return np.maximum.reduce([np.asarray(mask, dtype=np.uint8), *resized_masks])


def mask_from_file(path: Path, size: int, where: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            mask = image.convert("L").resize((size, size), Image.NEAREST)
    except Exception as error:
        raise InputError(f"{where}: cannot read mask {path}: {error}") from error
    return (np.asarray(mask) > 0).astype(np.uint8)
