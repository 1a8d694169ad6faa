"""Planted-shortcut stress test for any data set (``data.shortcut.*``; beyond both papers).

A realistic artefact is burned into the decoded images: a **text** marker rendered with a font
(like a hospital's burned-in "PORTABLE" label) whose *content* names a class, or a **corner tag**
(a bright lead-marker square) whose *position* names a class. In train (and val, unless
``data.shortcut.val`` says otherwise) the marker names the true class with probability ``bias``
and one of the other classes otherwise; in the test split it is random (or absent), so test
accuracy measures whether a model reads the image rather than the marker. Each marker's box (one
pixel wider) is added to the image's ``irrelevant`` mask, so IMIL's simulated clinician can mark it.

The marked images are a second cache folder derived from the decoded one: deterministic from
the run's seed, written once (atomically) and memory-mapped like the first.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hkd.atomic import atomic_folder
from hkd.errors import ConfigError

KINDS = ("text", "corner_tag")  # data.shortcut.kind
TEST_MODES = ("random", "absent")  # data.shortcut.test
VAL_MODES = ("biased", "random", "absent")  # data.shortcut.val
# Burned-in labels of the kind a department prints on its images; the k-th names class k.
DEFAULT_TEXTS = ("PORTABLE", "SUPINE", "ERECT", "AP", "PA", "L", "R", "ICU")
# Where the corner tag of class k sits (x, y as a share of the free image span).
TAG_POSITIONS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.0), (0.5, 1.0),
                 (0.0, 0.5), (1.0, 0.5))
SHORTCUT_VERSION = 1


@dataclass(frozen=True)
class ShortcutSpec:
    """What the marked images depend on (its hash names their cache folder)."""

    kind: str
    bias: float | None  # None: the marker is random in train too (the shortcut-free ceiling)
    val: str = "biased"
    test: str = "random"
    size: float = 0.12
    intensity: float = 1.0
    texts: tuple[str, ...] = DEFAULT_TEXTS

    def check(self, n_classes: int) -> None:
        """Wrong values are a ConfigError naming their ``data.shortcut`` key."""
        for key, value, allowed in (("kind", self.kind, KINDS), ("val", self.val, VAL_MODES),
                                    ("test", self.test, TEST_MODES)):
            if value not in allowed:
                raise ConfigError(f"data.shortcut.{key}={value}: not one of {', '.join(allowed)}")
        if self.bias is not None and not 0.0 <= self.bias <= 1.0:
            raise ConfigError(f"data.shortcut.bias={self.bias}: must lie in [0, 1]")
        if not 0.02 <= self.size <= 0.4:
            raise ConfigError(f"data.shortcut.size={self.size}: must lie in [0.02, 0.4] (share of the image)")
        codes = len(self.texts) if self.kind == "text" else len(TAG_POSITIONS)
        if n_classes > codes:
            raise ConfigError(f"data.shortcut: {n_classes} classes but only {codes} distinct "
                              f"{'texts (data.shortcut.texts)' if self.kind == 'text' else 'tag positions'}")

    def mode(self, split: str) -> str:
        return {"train": "biased", "val": self.val, "test": self.test}[split]


def marker_codes(labels: np.ndarray, splits: np.ndarray, n_classes: int, spec: ShortcutSpec,
                 seed: int) -> np.ndarray:
    """The class each image's marker names (-1: no marker), one seeded draw per image: the true
    class with probability ``bias`` (else another), uniform with ``bias`` None, and per
    ``spec.val`` / ``spec.test`` in those splits."""
    rng = np.random.default_rng([seed, 7919])
    agrees = rng.random(len(labels)) < (spec.bias if spec.bias is not None else 0.0)
    other = (labels + rng.integers(1, max(n_classes, 2), len(labels))) % n_classes
    uniform = rng.integers(0, n_classes, len(labels))
    codes = np.where(agrees, labels, other) if spec.bias is not None else uniform.copy()
    for split in ("val", "test"):
        mode = spec.mode(split)
        chosen = splits == split
        if mode == "random":
            codes[chosen] = uniform[chosen]
        elif mode == "absent":
            codes[chosen] = -1
    return codes


@lru_cache(maxsize=8)
def font(pixels: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (needs Pillow's FreeType support, as its wheels have)."""
    return ImageFont.load_default(size=pixels)


def marker_layer(code: int, image_size: int,
                 spec: ShortcutSpec) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The marker naming class ``code`` as an alpha layer (S, S) in [0, 1] and its box x0, y0, x1, y1."""
    layer = Image.new("L", (image_size, image_size), 0)
    draw = ImageDraw.Draw(layer)
    side = max(3, round(spec.size * image_size))
    margin = max(1, image_size // 32)
    if spec.kind == "text":
        text = spec.texts[code]
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font(side))
        # top right, like a department's burned-in label; clipped to fit small images
        x = max(margin, image_size - margin - (x1 - x0)) - x0
        draw.text((x, margin - y0), text, fill=255, font=font(side))
    else:
        fx, fy = TAG_POSITIONS[code]
        x = margin + round(fx * (image_size - 2 * margin - side))
        y = margin + round(fy * (image_size - 2 * margin - side))
        draw.rectangle((x, y, x + side - 1, y + side - 1), fill=255)
        draw.rectangle((x + side // 4, y + side // 4, x + side - 1 - side // 4, y + side - 1 - side // 4),
                       fill=96)  # the lead marker's letter cut-out, darker than its frame
    alpha = np.asarray(layer, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(alpha)
    box = (max(0, xs.min() - 1), max(0, ys.min() - 1), min(image_size, xs.max() + 2),
           min(image_size, ys.max() + 2))
    return alpha, box


def shortcut_folder(decoded: Path, codes: np.ndarray, spec: ShortcutSpec) -> Path:
    text = json.dumps({**asdict(spec), "version": SHORTCUT_VERSION, "codes": codes.tolist()},
                      sort_keys=True)
    return decoded.parent / f"{decoded.name}-shortcut-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def plant_shortcut(decoded: Path, codes: np.ndarray, spec: ShortcutSpec) -> Path:
    """The decoded cache with a marker burned into each image whose code is >= 0 and its box
    added to the irrelevant mask; written once beside ``decoded`` and returned."""
    def fill(tmp: Path) -> None:
        images = np.load(decoded / "images.npy", mmap_mode="r")
        irrelevant = np.load(decoded / "irrelevant.npy", mmap_mode="r")
        marked = np.lib.format.open_memmap(tmp / "images.npy", "w+", images.dtype, images.shape)
        boxes = np.lib.format.open_memmap(tmp / "irrelevant.npy", "w+", irrelevant.dtype, irrelevant.shape)
        size = images.shape[-1]
        layers = {code: marker_layer(code, size, spec) for code in np.unique(codes) if code >= 0}
        for i, code in enumerate(codes):
            image, mask = np.asarray(images[i], np.float32), np.array(irrelevant[i])
            if code >= 0:
                alpha, (x0, y0, x1, y1) = layers[code]
                image = image * (1 - alpha) + spec.intensity * alpha
                mask[y0:y1, x0:x1] = 1
            marked[i], boxes[i] = image, mask
        marked.flush()
        boxes.flush()
        shutil.copyfile(decoded / "relevant.npy", tmp / "relevant.npy")
        np.save(tmp / "codes.npy", codes)
        (tmp / "done").write_text(str(len(codes)))

    return atomic_folder(shortcut_folder(decoded, codes, spec), fill, "done")
