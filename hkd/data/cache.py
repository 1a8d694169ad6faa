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

from hkd.data.decode import decode_image, mask_from_file, rasterize, resize
from hkd.data.image_record import Record

CACHE_VERSION = 1


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
