"""The review queue on disk: ``RUN_DIR/imil/round_N/`` holds the round's samples (full-size
images, CAM overlays, ``manifest.json``, each sample with the identity of its data set image: its
file and content hash); the review page saves marks in the round's database
(``hkd.imil.marks_store``, exported to ``marks.json``), or a clinician's tool writes
``marks_coco.json`` (COCO; every region is irrelevant)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hkd.atomic import atomic_write_json, atomic_write_png
from hkd.data.decode import rasterize
from hkd.data.formats.folder import parse_region
from hkd.data.rle import encode as encode_rle
from hkd.errors import InputError
from hkd.imil.marks_store import MarksStore

MANIFEST = "manifest.json"
MARKS_COCO = "marks_coco.json"
MAX_REGIONS = 500
MAX_POINTS = 20000


def round_dir(run_dir: Path, number: int) -> Path:
    return Path(run_dir) / "imil" / f"round_{number}"


def round_numbers(run_dir: Path) -> list[int]:
    """The numbers of the run's rounds that hold samples (``imil/round_N/manifest.json``), in order."""
    numbers = []
    for folder in (Path(run_dir) / "imil").glob("round_*"):
        suffix = folder.name.split("_", 1)[1]
        if suffix.isdigit() and (folder / MANIFEST).is_file():
            numbers.append(int(suffix))
    return sorted(numbers)


def write_round(folder: Path, number: int, epoch: int, samples: list[dict], kind: str = "outliers") -> None:
    """``samples``: dicts with idx, file and sha256 (the data set image's identity), label,
    prediction, confidence, image (PIL), cam (PIL) and, for a ``proposals`` round, proposal (PIL
    overlay of the proposed region)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for position, sample in enumerate(samples):
        sample_id = f"s{position:03d}"
        image_name, cam_name = f"{sample_id}.png", f"{sample_id}_cam.png"
        atomic_write_png(folder / image_name, sample["image"])
        atomic_write_png(folder / cam_name, sample["cam"])
        entry = {"id": sample_id, "idx": int(sample["idx"]), "file": sample["file"],
                 "sha256": sample["sha256"], "label": sample["label"],
                 "prediction": sample["prediction"], "confidence": round(float(sample["confidence"]), 4),
                 "image": image_name, "cam": cam_name,
                 "width": sample["image"].width, "height": sample["image"].height}
        if "proposal" in sample:
            entry["proposal"] = f"{sample_id}_proposal.png"
            atomic_write_png(folder / entry["proposal"], sample["proposal"])
        entries.append(entry)
    atomic_write_json(folder / MANIFEST, {"round": number, "epoch": epoch, "kind": kind,
                                          "samples": entries})


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: cannot read the round's manifest: {error}") from error


def validate_regions(regions: object, width: int, height: int, where: str) -> list[dict]:
    """Check a sample's drawn regions; raise InputError naming what is wrong."""
    if not isinstance(regions, list):
        raise InputError(f"{where}: 'regions' must be a list")
    if len(regions) > MAX_REGIONS:
        raise InputError(f"{where}: at most {MAX_REGIONS} regions per sample")
    checked = []
    for number, region in enumerate(regions):
        at = f"{where} region {number}"
        if not isinstance(region, dict) or region.get("type") not in ("rect", "stroke"):
            raise InputError(f"{at}: needs type 'rect' or 'stroke'")
        if region["type"] == "rect":
            values = [region.get(k) for k in ("x", "y", "w", "h")]
            if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
                raise InputError(f"{at}: x, y, w, h must be numbers")
            x, y, w, h = map(float, values)
            if w <= 0 or h <= 0:
                raise InputError(f"{at}: width and height must be positive")
            if x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
                raise InputError(f"{at}: rectangle lies outside the {width}x{height} image")
            checked.append({"type": "rect", "x": x, "y": y, "w": w, "h": h,
                            "erase": bool(region.get("erase", False))})
        else:
            points, size = region.get("points"), region.get("width", 10)
            if not isinstance(points, list) or not points or len(points) > MAX_POINTS:
                raise InputError(f"{at}: 'points' must be a list of 1..{MAX_POINTS} [x, y] pairs")
            if not isinstance(size, (int, float)) or not 0 < size <= max(width, height):
                raise InputError(f"{at}: brush 'width' must be a positive number")
            for point in points:
                if (not isinstance(point, list) or len(point) != 2
                        or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in point)):
                    raise InputError(f"{at}: every point must be [x, y] numbers")
                if not (-1 <= point[0] <= width + 1 and -1 <= point[1] <= height + 1):
                    raise InputError(f"{at}: point {point} lies outside the {width}x{height} image")
            checked.append({"type": "stroke", "points": points, "width": float(size),
                            "erase": bool(region.get("erase", False))})
    return checked


def draw_marks(regions: list[dict], width: int, height: int) -> Image.Image:
    """Drawn regions (in the shown image's pixels) as a (height, width) mask image; erasers subtract."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for region in regions:
        value = 0 if region.get("erase") else 1
        if region["type"] == "rect":
            # PIL's corners are inclusive: a w x h rectangle ends at x + w - 1, y + h - 1
            draw.rectangle([region["x"], region["y"], region["x"] + max(region["w"] - 1, 0),
                            region["y"] + max(region["h"] - 1, 0)], fill=value)
        else:
            points = [tuple(p) for p in region["points"]]
            radius = region["width"] / 2
            if len(points) > 1:
                draw.line(points, fill=value, width=max(1, round(region["width"])), joint="curve")
            for x, y in points:
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=value)
    return canvas


def marks_rle(regions: list[dict], width: int, height: int) -> dict | None:
    """The drawn regions at full resolution as COCO RLE (None when nothing is left after erasing)."""
    mask = np.asarray(draw_marks(regions, width, height)) > 0
    return encode_rle(mask) if mask.any() else None


def rasterize_marks(regions: list[dict], width: int, height: int, size: int) -> np.ndarray:
    """Drawn regions as a (size, size) bool mask at the training size."""
    return np.asarray(draw_marks(regions, width, height).resize((size, size), Image.NEAREST)) > 0


@dataclass
class TakenMark:
    """A sample's mark as training takes it: the manifest entry (the image's row when the round was
    written, its file and content hash), the mask at the training size (None: skipped, not an
    error, or nothing left after erasing) and the mark's record."""

    sample: dict
    mask: np.ndarray | None
    mark: dict


def read_marks(folder: Path, size: int, marks: dict[str, dict] | None = None) -> list[TakenMark]:
    """The round's marks: ``marks`` ({sample id: mark}, e.g. those taken when the round closed) or
    the latest saved ones, then those of ``marks_coco.json``. Samples the clinician has not reached
    yet are left out."""
    manifest = read_manifest(folder)
    by_id = {s["id"]: s for s in manifest["samples"]}
    marks = MarksStore(folder).latest() if marks is None else marks
    taken = []
    for sample_id, mark in marks.items():
        if sample_id not in by_id:
            raise InputError(f"{folder}: a mark for unknown sample id '{sample_id}'")
        sample = by_id[sample_id]
        where = f"{folder.name} sample {sample_id}"
        regions = validate_regions(mark.get("regions", []), sample["width"], sample["height"], where)
        mask = rasterize_marks(regions, sample["width"], sample["height"], size) \
            if mark.get("status") == "marked" and regions else None
        taken.append(TakenMark(sample, mask if mask is not None and mask.any() else None, mark))
    coco_path = folder / MARKS_COCO
    if coco_path.is_file():
        coco = _read_coco_marks(coco_path, by_id, size)
        taken = [t for t in taken if t.sample["id"] not in {c.sample["id"] for c in coco}] + coco
    return taken


def _read_coco_marks(path: Path, by_id: dict, size: int) -> list[TakenMark]:
    try:
        coco = json.loads(path.read_text())
        images = {image["id"]: image["file_name"] for image in coco["images"]}
        annotations = coco["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a COCO file with images and annotations: {error}") from error
    by_file = {s["image"]: s for s in by_id.values()}
    regions: dict[str, list] = {}
    for number, annotation in enumerate(annotations):
        file_name = images.get(annotation.get("image_id"))
        if file_name not in by_file:
            raise InputError(f"{path} annotations[{number}]: image is not in this round")
        regions.setdefault(file_name, []).extend(parse_region(annotation, f"{path} annotations[{number}]"))
    taken = []
    for file_name, polygons in regions.items():
        sample = by_file[file_name]
        mask = rasterize(polygons, sample["width"], sample["height"], size) > 0
        taken.append(TakenMark(sample, mask if mask.any() else None, {"status": "marked", "source": "coco"}))
    return taken
