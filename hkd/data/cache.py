"""Decode and resize every image once into memory-mapped arrays.

``images.npy`` (N, C, S, S) float16 in [0, 1]; ``relevant.npy`` and ``irrelevant.npy``
(N, S, S) uint8 masks rasterised from the annotations at the same size. Later epochs and every
DataLoader worker read these files through the page cache instead of decoding again, and the
process never holds the whole data set in its own memory.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hkd.atomic import atomic_folder
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


def decode_record(record: Record, image_size: int,
                  channels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One record as the cache stores it: image (C, S, S), relevant and irrelevant masks (S, S)."""
    array = decode_image(record.path, channels, record.source)
    height, width = array.shape[1:]
    image = resize(array, image_size).clip(0, 1)
    relevant = np.zeros((image_size, image_size), np.uint8)
    if record.mask_path is not None:
        relevant = mask_from_file(record.mask_path, image_size, record.source)
    if record.relevant:
        relevant = relevant | rasterize(record.relevant, width, height, image_size)
    return image, relevant, rasterize(record.irrelevant, width, height, image_size)


def decode_workers(workers: int) -> int:
    """Threads that decode: ``data.num_workers``, or every core when it is 0 (PIL's decoders and
    resizing release the GIL, so threads run in parallel without copying images between processes)."""
    return max(1, workers or os.cpu_count() or 1)


def build_cache(records: list[Record], image_size: int, channels: int, cache_dir: str | Path,
                workers: int = 0) -> Path:
    """Write the arrays once (atomically, as a folder renamed into place), decoding in parallel
    with a progress bar; return the folder."""
    folder = Path(cache_dir) / "decoded" / cache_key(records, image_size, channels)

    def fill(tmp: Path) -> None:
        n, s = len(records), image_size
        images = np.lib.format.open_memmap(tmp / "images.npy", "w+", np.float16, (n, channels, s, s))
        relevant = np.lib.format.open_memmap(tmp / "relevant.npy", "w+", np.uint8, (n, s, s))
        irrelevant = np.lib.format.open_memmap(tmp / "irrelevant.npy", "w+", np.uint8, (n, s, s))
        with ThreadPoolExecutor(decode_workers(workers)) as pool:
            decoded = pool.map(lambda record: decode_record(record, s, channels), records)
            for i, (image, relevant_mask, irrelevant_mask) in enumerate(
                    tqdm(decoded, total=n, desc="decoding images", unit="img", disable=n < 100)):
                images[i], relevant[i], irrelevant[i] = image, relevant_mask, irrelevant_mask
        for array in (images, relevant, irrelevant):
            array.flush()
        (tmp / "done").write_text(str(n))

    return atomic_folder(folder, fill, "done")


def open_cache(folder: Path) -> CacheArrays:
    return CacheArrays(images=np.load(folder / "images.npy", mmap_mode="r"),
                       relevant=np.load(folder / "relevant.npy", mmap_mode="r"),
                       irrelevant=np.load(folder / "irrelevant.npy", mmap_mode="r"),
                       folder=folder)
