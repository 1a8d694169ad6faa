"""The embedded synthetic pneumonia benchmark.

Chest-X-ray-like grayscale images: a torso, two lung fields, ribs, spine and heart shadow.
Each class puts its own kind of finding *inside the lungs*:

* ``covid19``: bilateral, peripheral, diffuse ground-glass opacities (one per lung);
* ``viral``: a reticular patch of thin interstitial lines in one lung;
* ``bacterial``: one dense lobar consolidation with a sharp edge (annotated as a polygon);
* ``fungal``: several small cavitating nodules (a bright ring around a darker core);
* ``healthy`` (optional): no finding.

The expert annotations are boxes (and one polygon) around the findings. A **shortcut** tag sits
outside the lungs: a bright label in a corner whose *position* names a class. In train/val it names
the true class with probability ``shortcut_bias`` (else one of the other classes); in the test split
it is random, so test accuracy measures whether a model looks at the lungs. The tag's box is written
as an ``irrelevant`` annotation and each lung's outline as a ``lung`` polygon (the anatomical prior
real data sets such as covid-chestxray provide; pick it with ``data.relevant_categories=[lung]``).
The data set is written in the folder format (``labels.csv``,
``annotations.json``, ``images/``) and read back by the same loader as users' data.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from hkd.atomic import atomic_folder
from hkd.data.formats.folder import read_folder
from hkd.data.formats.source import DataSource, SyntheticSpec
from hkd.data.image_record import Record

# Where the shortcut tag of each class sits (x, y as a fraction of the image), outside the lungs.
TAG_POSITIONS = ((0.09, 0.09), (0.91, 0.09), (0.09, 0.91), (0.91, 0.91), (0.5, 0.07))


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, rx: float, ry: float,
             edge: float = 0.02) -> np.ndarray:
    """Soft-edged ellipse in [0, 1]."""
    radius = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    return np.clip((1.0 - radius) / edge * min(rx, ry) + 0.5, 0.0, 1.0) if edge else \
        (radius <= 1.0).astype(np.float32)


def _box(cx: float, cy: float, half_w: float, half_h: float, size: int) -> list[float]:
    """COCO ``[x, y, w, h]`` in pixels, clipped to the image."""
    x0, y0 = max(0.0, (cx - half_w) * size), max(0.0, (cy - half_h) * size)
    x1, y1 = min(float(size), (cx + half_w) * size), min(float(size), (cy + half_h) * size)
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


class _Anatomy:
    """One random patient: the body, lungs and the lung mask the findings live in."""

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.size = size
        self.yy, self.xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
        cx = 0.5 + rng.normal(0, 0.015)
        self.lungs = []  # (cx, cy, rx, ry) per lung, right lung (image left) first
        for side in (-1, 1):
            self.lungs.append((cx + side * (0.17 + rng.normal(0, 0.01)),
                               0.5 + rng.normal(0, 0.015),
                               0.12 + rng.normal(0, 0.008), 0.27 + rng.normal(0, 0.015)))
        xx, yy = self.xx, self.yy
        body = _ellipse(xx, yy, cx, 0.56, 0.42, 0.52, edge=0.08)
        lungs_soft = np.maximum(*[_ellipse(xx, yy, *lung, edge=0.06) for lung in self.lungs])
        self.lung_mask = lungs_soft
        ribs = (np.sin(2 * np.pi * (yy * 8.5 + 0.12 * np.abs(xx - cx) * 8 + rng.uniform())) > 0.55)
        spine = _ellipse(xx, yy, cx, 0.55, 0.035, 0.6, edge=0.3)
        heart = _ellipse(xx, yy, cx + 0.06, 0.66, 0.11, 0.1, edge=0.3)
        self.image = (0.06 + 0.5 * body - 0.32 * lungs_soft + 0.06 * ribs * lungs_soft
                      + 0.18 * spine * body + 0.16 * heart).astype(np.float32)

    def lung_polygons(self, points: int = 16) -> list[dict]:
        """Each lung's outline as a COCO polygon (pixels): the anatomical prior of real data sets."""
        angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
        polygons = []
        for cx, cy, rx, ry in self.lungs:
            xs = np.clip((cx + rx * np.cos(angles)) * self.size, 0, self.size)
            ys = np.clip((cy + ry * np.sin(angles)) * self.size, 0, self.size)
            flat = np.stack([xs, ys], axis=1).round(2).ravel().tolist()
            polygons.append({"segmentation": [flat]})
        return polygons

    def point_in_lung(self, rng: np.random.Generator, lung: int, margin: float) -> tuple[float, float]:
        cx, cy, rx, ry = self.lungs[lung]
        angle, radius = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform()) * (1 - margin)
        return cx + radius * rx * np.cos(angle), cy + radius * ry * np.sin(angle)


def _covid19(anatomy: _Anatomy, rng: np.random.Generator, contrast: float):
    """Bilateral peripheral ground glass in the lower lung fields."""
    layer = np.zeros_like(anatomy.image)
    regions = []
    for lung, side in zip(range(2), (-1, 1)):
        cx, cy, rx, ry = anatomy.lungs[lung]
        gx, gy = cx + side * rx * rng.uniform(0.2, 0.45), cy + ry * rng.uniform(0.05, 0.45)
        sigma = rng.uniform(0.05, 0.07)
        blob = np.exp(-((anatomy.xx - gx) ** 2 + (anatomy.yy - gy) ** 2) / (2 * sigma ** 2))
        layer += 0.9 * contrast * blob
        regions.append({"bbox": _box(gx, gy, 2 * sigma, 2 * sigma, anatomy.size)})
    return layer, regions


def _viral(anatomy: _Anatomy, rng: np.random.Generator, contrast: float):
    """A patch of thin reticular (interstitial) lines in one lung."""
    lung = int(rng.integers(2))
    px, py = anatomy.point_in_lung(rng, lung, margin=0.45)
    radius = rng.uniform(0.08, 0.11)
    patch = _ellipse(anatomy.xx, anatomy.yy, px, py, radius, radius * 1.3, edge=0.02)
    lines = np.zeros_like(anatomy.image)
    for _ in range(int(rng.integers(5, 8))):
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-radius, radius)
        distance = np.abs((anatomy.xx - px) * np.sin(angle) - (anatomy.yy - py) * np.cos(angle)
                          - offset)
        lines = np.maximum(lines, np.clip(1 - distance * anatomy.size / 1.2, 0, 1))
    return 1.2 * contrast * lines * patch, [{"bbox": _box(px, py, 1.12 * radius, 1.12 * radius * 1.3,
                                                            anatomy.size)}]


def _bacterial(anatomy: _Anatomy, rng: np.random.Generator, contrast: float):
    """One dense lobar consolidation; annotated with a polygon around it."""
    lung = int(rng.integers(2))
    px, py = anatomy.point_in_lung(rng, lung, margin=0.55)
    rx, ry = rng.uniform(0.06, 0.085), rng.uniform(0.07, 0.11)
    layer = 1.1 * contrast * _ellipse(anatomy.xx, anatomy.yy, px, py, rx, ry, edge=0.015)
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    polygon = np.stack([(px + 1.15 * rx * np.cos(angles)) * anatomy.size,
                        (py + 1.15 * ry * np.sin(angles)) * anatomy.size], axis=1)
    polygon = np.clip(polygon, 0, anatomy.size).round(2).reshape(-1).tolist()
    return layer, [{"segmentation": [polygon], "bbox": _box(px, py, 1.15 * rx, 1.15 * ry, anatomy.size)}]


def _fungal(anatomy: _Anatomy, rng: np.random.Generator, contrast: float):
    """Several small cavitating nodules scattered over both lungs."""
    layer = np.zeros_like(anatomy.image)
    regions = []
    for _ in range(int(rng.integers(4, 7))):
        px, py = anatomy.point_in_lung(rng, int(rng.integers(2)), margin=0.3)
        radius = rng.uniform(0.022, 0.03)
        distance = np.sqrt((anatomy.xx - px) ** 2 + (anatomy.yy - py) ** 2) / radius
        ring = np.exp(-((distance - 0.8) ** 2) / 0.08)
        layer = np.maximum(layer, 1.3 * contrast * ring)
        regions.append({"bbox": _box(px, py, 1.4 * radius, 1.4 * radius, anatomy.size)})
    return layer, regions


FINDINGS = {"covid19": _covid19, "viral": _viral, "bacterial": _bacterial, "fungal": _fungal}


def _draw_tag(image: np.ndarray, position: tuple[float, float], rng: np.random.Generator) -> list[float]:
    """A bright rectangular label with dark 'text' strokes; returns its COCO box."""
    size = image.shape[0]
    half = 0.055
    cx = position[0] + rng.uniform(-0.015, 0.015)
    cy = position[1] + rng.uniform(-0.015, 0.015)
    box = _box(cx, cy, half, half * 0.7, size)
    x0, y0, w, h = (int(round(v)) for v in box)
    image[y0:y0 + h, x0:x0 + w] = 0.95
    for row in range(y0 + 1, y0 + h - 1, 2):
        image[row, x0 + 1:x0 + w - 1] = 0.55
    return box


def _tag_class(rng: np.random.Generator, label: int, n_classes: int, split: str,
               bias: float | None, val_shortcut: str = "biased") -> int:
    if split == "test" or bias is None or (split == "val" and val_shortcut == "random"):
        return int(rng.integers(n_classes))
    if rng.uniform() < bias:
        return label
    others = [k for k in range(n_classes) if k != label]
    return int(rng.choice(others))


def render_sample(rng: np.random.Generator, label: int, tag_class: int, spec: SyntheticSpec):
    """One image in [0, 1], its finding regions, the tag's (irrelevant) box and the lung outlines."""
    anatomy = _Anatomy(rng, spec.size)
    name = spec.classes[label]
    regions: list[dict] = []
    image = anatomy.image
    if name in FINDINGS:
        layer, regions = FINDINGS[name](anatomy, rng, spec.contrast)
        image = image + layer * anatomy.lung_mask
    low_freq = rng.normal(0, 1, (6, 6)).astype(np.float32)
    shading = np.asarray(Image.fromarray(low_freq).resize((spec.size, spec.size), Image.BICUBIC))
    image = image + 0.03 * shading + rng.normal(0, 0.025, image.shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0)
    tag_box = _draw_tag(image, TAG_POSITIONS[tag_class], rng)
    return image, regions, tag_box, anatomy.lung_polygons()


def generate(spec: SyntheticSpec, root: Path) -> Path:
    """Write the data set to ``root`` in the folder format (atomically: all or nothing)."""
    return atomic_folder(root, lambda tmp: _write(spec, tmp), "labels.csv")


def _write(spec: SyntheticSpec, out: Path) -> None:
    rng = np.random.default_rng(spec.seed)
    (out / "images").mkdir()
    n_classes = len(spec.classes)
    rows, images, annotations = [], [], []
    categories = [{"id": 1, "name": "finding"}, {"id": 2, "name": "irrelevant"},
                  {"id": 3, "name": "lung"}]
    splits = ["train"] * spec.n_train + ["val"] * spec.n_val + ["test"] * spec.n_test
    for index, split in enumerate(splits):
        label = index % n_classes  # balanced classes
        tag = _tag_class(rng, label, n_classes, split, spec.shortcut_bias, spec.val_shortcut)
        image, regions, tag_box, lungs = render_sample(rng, label, tag, spec)
        file_name = f"images/{index:05d}.png"
        Image.fromarray((image * 255).round().astype(np.uint8)).save(out / file_name)
        rows.append({"image": file_name, "label": spec.classes[label],
                     "patient_id": f"p{index:05d}", "split": split, "shortcut": spec.classes[tag]})
        images.append({"id": index + 1, "file_name": file_name,
                       "width": spec.size, "height": spec.size})
        for region in regions:
            annotations.append({"image_id": index + 1, "category_id": 1, **region})
        annotations.append({"image_id": index + 1, "category_id": 2, "bbox": tag_box})
        annotations.extend({"image_id": index + 1, "category_id": 3, **lung} for lung in lungs)
    for number, annotation in enumerate(annotations, start=1):
        annotation["id"] = number
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "annotations.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))
    (out / "spec.json").write_text(json.dumps(asdict(spec), indent=2))


def ensure_synthetic(spec: SyntheticSpec, cache_dir: str | Path) -> Path:
    """The data set's folder in the cache, generated on first use."""
    return generate(spec, Path(cache_dir) / "synthetic" / spec.key())


def read_synthetic(source: DataSource, seed: int) -> tuple[list[Record], list[str]]:
    """The embedded benchmark, generated into ``data.cache_dir`` on first use and read back by the
    folder loader (``data.relevant_categories`` defaults to the findings)."""
    spec = source.synthetic if source.synthetic is not None else SyntheticSpec(seed=seed)
    categories = list(source.relevant_categories or ["finding"])
    return read_folder(ensure_synthetic(spec, source.cache_dir), categories), list(spec.classes)
