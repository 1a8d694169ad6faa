"""Decode and resize every image once into memory-mapped arrays.

``images.npy`` (N, C, S, S) float16 in [0, 1]; ``relevant.npy`` and ``irrelevant.npy``
(N, S, S) uint8 masks rasterised from the annotations at the same size. Later epochs and every
DataLoader worker read these files through the page cache instead of decoding again, and the
process never holds the whole data set in its own memory.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from hkd.data.dicom import decode_dicom, is_dicom
from hkd.data.records import DataError, Record, Region

CACHE_VERSION = 1


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
        raise DataError(f"{where or path}: cannot decode image {path}: {error}") from error
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        if not np.isfinite(array).all():
            raise DataError(f"{where or path}: image {path} has NaN or infinite pixel values")
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
    """The union of the regions as a (size, size) uint8 mask (1 inside)."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    sx, sy = size / width, size / height
    for region in regions:
        points = [(x * sx, y * sy) for x, y in region.polygon]
        draw.polygon(points, fill=1, outline=1)
    return np.asarray(mask, dtype=np.uint8)


def mask_from_file(path: Path, size: int, where: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            mask = image.convert("L").resize((size, size), Image.NEAREST)
    except Exception as error:
        raise DataError(f"{where}: cannot read mask {path}: {error}") from error
    return (np.asarray(mask) > 0).astype(np.uint8)


@dataclass
class CacheArrays:
    images: np.ndarray  # (N, C, S, S) float16, memory-mapped
    relevant: np.ndarray  # (N, S, S) uint8
    irrelevant: np.ndarray  # (N, S, S) uint8
    folder: Path


def cache_key(records: list[Record], image_size: int, channels: int) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, image_size, channels]).encode())
    for record in records:
        stat = record.path.stat()
        digest.update(f"{record.path}|{stat.st_size}|{stat.st_mtime_ns}|{record.mask_path}|"
                      f"{record.relevant}|{record.irrelevant}".encode())
    return digest.hexdigest()[:16]


def build_cache(records: list[Record], image_size: int, channels: int,
                cache_dir: str | Path) -> Path:
    """Write the arrays once (atomically, as a folder renamed into place); return its path."""
    folder = Path(cache_dir) / "decoded" / cache_key(records, image_size, channels)
    if (folder / "done").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        n, s = len(records), image_size
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.float16, (n, channels, s, s))
        relevant = np.lib.format.open_memmap(tmp / "relevant.npy", "w+", np.uint8, (n, s, s))
        irrelevant = np.lib.format.open_memmap(tmp / "irrelevant.npy", "w+", np.uint8, (n, s, s))
        for i, record in enumerate(records):
            array = decode_image(record.path, channels, record.source)
            height, width = array.shape[1:]
            images[i] = resize(array, s).clip(0, 1)
            if record.mask_path is not None:
                relevant[i] = mask_from_file(record.mask_path, s, record.source)
            if record.relevant:
                relevant[i] |= rasterize(record.relevant, width, height, s)
            irrelevant[i] = rasterize(record.irrelevant, width, height, s)
        for array in (images, relevant, irrelevant):
            array.flush()
        (tmp / "done").write_text(str(n))
        del images, relevant, irrelevant
        shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same cache first
            if not (folder / "done").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def open_cache(folder: Path) -> CacheArrays:
    return CacheArrays(images=np.load(folder / "images.npy", mmap_mode="r"),
                       relevant=np.load(folder / "relevant.npy", mmap_mode="r"),
                       irrelevant=np.load(folder / "irrelevant.npy", mmap_mode="r"),
                       folder=folder)
