"""What a person sees of an IMIL round: the original image with the model's CAM, the proposed
region of a propagated edit, and the edit as training sees it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image

from hkd.data.decode import decode_image
from hkd.data.training_images import TrainingImages
from hkd.imil.edits import EditTable


def round_pictures(images: TrainingImages, table: EditTable, indices: list[int],
                   ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per edited sample: (idx, (original, removed region, edited image as training sees it))."""
    for i in indices:
        original = images.original(i)
        edited = table.apply(i, original)  # with the table's fill and margin
        yield i, (original[0].numpy(), table[i].mask.astype(np.float32), edited[0].numpy())


DISPLAY_MAX = 1024  # the review page's images: the longer side at most this many pixels


def display_image(images: TrainingImages, idx: int) -> Image.Image:
    """The image as training decoded it — DICOM windowing and MONOCHROME1, 16-bit scaling, EXIF
    rotation — upright, at its own aspect ratio, the longer side at most ``DISPLAY_MAX``, as RGB.
    Marks drawn on it map to the training tensor by scaling alone (the training square is the
    same upright image resized), so they cover the same anatomy."""
    path = images.source_file(idx)
    gray = decode_image(path, 1, str(path))[0]
    picture = Image.fromarray((gray.clip(0, 1) * 255).round().astype(np.uint8), mode="L")
    scale = min(1.0, DISPLAY_MAX / max(picture.size))
    if scale < 1:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.BILINEAR, reducing_gap=None)
    return picture.convert("RGB")


def proposal_overlay(mask: Image.Image) -> Image.Image:
    """A translucent blue layer over the proposed region."""
    alpha = (np.asarray(mask) > 127).astype(np.uint8) * 140
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 2], rgba[..., 1], rgba[..., 3] = 255, 120, alpha
    return Image.fromarray(rgba, mode="RGBA")


def heatmap(gray: Image.Image) -> Image.Image:
    """A colour heatmap (blue -> red) with alpha, for overlaying in the review page; its red
    channel is the value itself (``heatmap_values`` reads it back)."""
    value = np.asarray(gray, dtype=np.float32) / 255
    rgba = np.stack([value, 1 - np.abs(value - 0.5) * 2, 1 - value, 0.15 + 0.6 * value], -1)
    return Image.fromarray((rgba * 255).astype(np.uint8), mode="RGBA")


def heatmap_values(picture: Image.Image) -> np.ndarray:
    """The 0..1 values a ``heatmap`` picture was made from (its red channel)."""
    return np.asarray(picture.convert("RGBA"), dtype=np.float32)[..., 0] / 255
