"""Label Studio's brush masks: its own run-length encoding, not COCO's.

A brush result's ``value.rle`` is a list of bytes holding a bit stream over the RGBA pixels of the
image (height x width x 4 values, the mask in every channel): a 32-bit value count, the word size
minus one (5 bits), four run-length field sizes minus one (4 bits each), then runs. A run is one
bit (1: one value repeated, 0: that many literal values), two bits choosing a field size, the run
length minus one in that many bits, then the value(s) in word-size bits. This is the layout of
Label Studio's converter (``label_studio_converter.brush``), which the tests round-trip against.
"""

from __future__ import annotations

import numpy as np

from hkd.errors import InputError

FIELD_SIZES = (3, 4, 8, 16)  # run-length field sizes (bits) the encoder declares
WORD_SIZE = 8


class BitReader:
    def __init__(self, data: list[int] | bytes, where: str) -> None:
        try:
            self.bits = np.unpackbits(np.asarray(data, dtype=np.uint8))
        except (ValueError, OverflowError, TypeError) as error:
            raise InputError(f"{where}: a brush 'rle' must be a list of bytes (0-255): {error}") from error
        self.position, self.where = 0, where

    def read(self, size: int) -> int:
        end = self.position + size
        if end > len(self.bits):
            raise InputError(f"{self.where}: the brush RLE ends in the middle of its data")
        value = 0
        for bit in self.bits[self.position:end]:
            value = (value << 1) | int(bit)
        self.position = end
        return value


def decode(rle: list[int] | bytes, height: int, width: int, where: str) -> np.ndarray:
    """A brush ``rle`` -> (height, width) bool mask (the alpha channel's painted pixels)."""
    reader = BitReader(rle, where)
    count = reader.read(32)
    word = reader.read(5) + 1
    sizes = [reader.read(4) + 1 for _ in range(4)]
    if count != height * width * 4:
        raise InputError(f"{where}: the brush RLE holds {count} values, not {height} x {width} x 4 "
                         "(original_height x original_width x RGBA)")
    values = np.zeros(count, dtype=np.uint32)
    done = 0
    while done < count:
        repeated = reader.read(1)
        end = min(count, done + 1 + reader.read(sizes[reader.read(2)]))
        if repeated:
            values[done:end] = reader.read(word)
        else:
            for position in range(done, end):
                values[position] = reader.read(word)
        done = end
    return values.reshape(height, width, 4)[:, :, 3] > 0


def encode(mask: np.ndarray) -> list[int]:
    """A (height, width) mask as a brush ``rle`` (painted pixels 255 in every RGBA channel)."""
    flat = np.repeat(np.asarray(mask, dtype=bool).ravel(), 4).astype(np.uint8) * 255
    header = f"{len(flat):032b}{WORD_SIZE - 1:05b}" + "".join(f"{size - 1:04b}" for size in FIELD_SIZES)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], changes])
    lengths = np.diff(np.concatenate([starts, [len(flat)]]))
    runs = []
    for start, length in zip(starts, lengths):
        value = f"{int(flat[start]):08b}"
        while length > 0:  # a field of 16 bits holds runs of up to 2^16
            piece = min(int(length), 2 ** 16)
            field = next(i for i, size in enumerate(FIELD_SIZES) if piece <= 2 ** size)
            runs.append(f"1{field:02b}{piece - 1:0{FIELD_SIZES[field]}b}{value}")
            length -= piece
    bits = header + "".join(runs)
    bits += "0" * (8 - len(bits) % 8)  # as Label Studio's encoder: a whole zero byte when already aligned
    return np.packbits(np.frombuffer(bits.encode(), dtype=np.uint8) - ord("0")).tolist()
