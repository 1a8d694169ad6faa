"""The folder format, the generic way to bring your own data.

``ROOT/labels.csv``: ``image`` (path relative to ROOT), ``label``; optional ``patient_id`` and
``split`` (train/val/test); any other column (sex, age, site, device, ...) is kept as the image's
metadata, for subgroup reports (``hkd report --by COLUMN``). ``ROOT/annotations.json`` (optional,
COCO): boxes ``[x, y, w, h]`` and/or polygon ``segmentation`` per image; the category named
``irrelevant`` marks regions to ignore, every other category marks relevant regions (or only those
named in ``data.relevant_categories``; the others are then ignored). ``ROOT/label_studio.json``
(optional): a Label Studio JSON export (rectangles, polygons, brush masks), read the same way, its
labels as the categories. ``ROOT/masks/<image stem>.png`` (optional): relevant-region masks
(non-zero = relevant).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from PIL import Image

from hkd.data.dicom import dicom_size, is_dicom
from hkd.data.formats.source import DataSource
from hkd.data.image_record import SPLITS, Record, Region
from hkd.data.label_studio import LABEL_STUDIO_EXPORT, to_coco
from hkd.data.rle import from_segmentation
from hkd.errors import InputError

IRRELEVANT_CATEGORY = "irrelevant"
FORMAT_COLUMNS = ("image", "label", "patient_id", "split")  # every other column is metadata (e.g. sex, site)
EXIF_ORIENTATION = 0x0112  # orientations 5-8 swap width and height


def read_folder(root: str | Path, relevant_categories: list[str] | None = None) -> list[Record]:
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data.root {root} is not a folder")
    records = read_labels_csv(root / "labels.csv", root)
    annotations = root / "annotations.json"
    if annotations.is_file():
        apply_coco(records, annotations, root, relevant_categories=relevant_categories)
    label_studio = root / LABEL_STUDIO_EXPORT
    if label_studio.is_file():
        coco = to_coco(read_json(label_studio), str(label_studio))
        match_file_names(coco, records, root)
        apply_coco_dict(records, coco, label_studio, root, relevant_categories=relevant_categories)
    masks = root / "masks"
    if masks.is_dir():
        for record in records:
            candidate = masks / f"{record.path.stem}.png"
            if candidate.is_file():
                record.mask_path = candidate
    return records


def match_file_names(coco: dict, records: list[Record], root: Path) -> None:
    """Point each image of ``coco`` at its record: by its path under ``root``, else by its file name
    alone where one record has that name (Label Studio's uploads keep only the name)."""
    paths = {record.path for record in records}
    by_name: dict[str, list[Record]] = {}
    for record in records:
        by_name.setdefault(record.path.name, []).append(record)
    for image in coco["images"]:
        if (root / image["file_name"]).resolve() not in paths:
            named = by_name.get(Path(image["file_name"]).name, [])
            if len(named) == 1:
                image["file_name"] = str(named[0].path.relative_to(root.resolve()))


def read_labels_csv(path: Path, root: Path) -> list[Record]:
    if not path.is_file():
        raise InputError(f"{path} is missing: the folder format needs labels.csv with "
                        "columns image,label[,patient_id,split]")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in ("image", "label") if c not in columns]
            if missing:
                raise InputError(f"{path}: missing column(s) {', '.join(missing)}; "
                                f"found {', '.join(columns) or 'no header'}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"{path}: not a readable CSV file: {error}") from error
    if not rows:
        raise InputError(f"{path}: no rows")
    records, seen = [], {}
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        where = f"{path} row {line}"
        image, label = row.get("image", ""), row.get("label", "")
        if not image or not label:
            raise InputError(f"{where}: empty 'image' or 'label'")
        if image in seen:
            raise InputError(f"{where}: image {image} is listed twice (also row {seen[image]})")
        seen[image] = line
        image_path = (root / image).resolve()
        if not image_path.is_file():
            raise InputError(f"{where}: image file {root / image} does not exist")
        split = row.get("split") or None
        if split is not None and split not in SPLITS:
            raise InputError(f"{where}: split '{split}' is not one of {', '.join(SPLITS)}")
        records.append(Record(path=image_path, label=label,
                              patient_id=row.get("patient_id") or image, split=split,
                              source=where, metadata={key: value for key, value in row.items()
                                                      if key not in FORMAT_COLUMNS}))
    return records


def _number_list(value: object, where: str, what: str) -> list[float]:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise InputError(f"{where}: '{what}' must be a list of numbers, got {value!r}")
    if not all(math.isfinite(v) for v in value):
        raise InputError(f"{where}: '{what}' has a non-finite number: {value!r}")
    return [float(v) for v in value]


def parse_region(annotation: dict, where: str) -> list[Region]:
    """The regions of one COCO annotation: polygons if present, else its bbox."""
    segmentation = annotation.get("segmentation")
    regions = []
    if isinstance(segmentation, list) and segmentation:
        polygons = segmentation if isinstance(segmentation[0], list) else [segmentation]
        for polygon in polygons:
            values = _number_list(polygon, where, "segmentation")
            if len(values) < 6 or len(values) % 2:
                raise InputError(f"{where}: a polygon needs an even number (>= 6) of "
                                f"coordinates, got {len(values)}")
            region = Region(tuple(zip(values[0::2], values[1::2])))
            if polygon_area(region) <= 0:
                raise InputError(f"{where}: a polygon has no area (its points are on one line)")
            regions.append(region)
        return regions
    if isinstance(segmentation, dict) and segmentation:  # a mask: COCO RLE (CVAT, Label Studio via hkd)
        return [Region.from_rle(from_segmentation(segmentation, where))]
    if segmentation not in (None, [], {}):
        raise InputError(f"{where}: 'segmentation' must be polygon lists or an RLE object")
    if "bbox" not in annotation:
        raise InputError(f"{where}: needs a 'bbox' or a polygon 'segmentation'")
    box = _number_list(annotation["bbox"], where, "bbox")
    if len(box) != 4:
        raise InputError(f"{where}: bbox must be [x, y, w, h], got {box}")
    region = Region.from_box(*box)
    if box[2] <= 0 or box[3] <= 0 or polygon_area(region) <= 0:
        raise InputError(f"{where}: bbox {box} has a non-positive width or height")
    return [region]


def polygon_area(region: Region) -> float:
    """Shoelace area (absolute) of a region's polygon (a mask's bounding box for an RLE mask)."""
    if region.rle is not None:
        x0, y0, x1, y1 = region.bounds()
        return (x1 - x0) * (y1 - y0)
    xs, ys = zip(*region.polygon)
    return abs(sum(x0 * y1 - x1 * y0 for x0, y0, x1, y1 in zip(xs, ys, xs[1:] + xs[:1], ys[1:] + ys[:1]))) / 2


def check_inside(region: Region, width: int, height: int, where: str, tolerance: float = 1.0) -> None:
    if region.rle is not None and region.rle[:2] != (height, width):
        raise InputError(f"{where}: the RLE mask is {region.rle[1]}x{region.rle[0]}, the image "
                         f"{width}x{height}")
    x0, y0, x1, y1 = region.bounds()
    if x0 < -tolerance or y0 < -tolerance or x1 > width + tolerance or y1 > height + tolerance:
        raise InputError(f"{where}: region ({x0:g}, {y0:g})-({x1:g}, {y1:g}) lies outside the "
                        f"{width}x{height} image")


def image_size(path: Path, where: str) -> tuple[int, int]:
    """(width, height) as decoded: DICOM from its header, others after EXIF rotation."""
    if is_dicom(path):
        return dicom_size(path, where)
    try:
        with Image.open(path) as image:
            width, height = image.size
            transposed = image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
            return (height, width) if transposed else (width, height)
    except Exception as error:  # PIL raises several types for unreadable files
        raise InputError(f"{where}: cannot read image {path}: {error}") from error


def clip_region(region: Region, width: int, height: int) -> Region:
    if region.rle is not None:
        check_inside(region, width, height, "an RLE mask")
        return region
    return Region(tuple((min(max(x, 0.0), width), min(max(y, 0.0), height)) for x, y in region.polygon))


def apply_coco(records: list[Record], path: Path, root: Path, clip: bool = False,
               relevant_categories: list[str] | None = None) -> int:
    """Attach the regions of a COCO file to the records (matched by ``file_name``).

    A region outside its image is an error, or with ``clip`` (public data sets whose boxes were
    rescaled) clipped to the image; returns how many were clipped. With ``relevant_categories``
    only those categories count as relevant (the ``irrelevant`` one always counts as irrelevant)."""
    return apply_coco_dict(records, read_json(path), path, root, clip, relevant_categories)


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON: {error}") from error


def apply_coco_dict(records: list[Record], coco: object, path: Path | str, root: Path, clip: bool = False,
                    relevant_categories: list[str] | None = None) -> int:
    """``apply_coco`` on COCO already read (``path`` names it in messages)."""
    if not isinstance(coco, dict):
        raise InputError(f"{path}: the top level must be an object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(coco.get(key), list):
            raise InputError(f"{path}: key '{key}' is missing or not a list")
    categories = coco.get("categories") or []
    if not isinstance(categories, list):
        raise InputError(f"{path}: key 'categories' must be a list")
    names = {c.get("id"): str(c.get("name", "")) for c in categories if isinstance(c, dict)}
    irrelevant_ids = {i for i, name in names.items() if name.lower() == IRRELEVANT_CATEGORY}
    relevant_ids = None
    if relevant_categories is not None:
        unknown = sorted(set(relevant_categories) - set(names.values()))
        if unknown:
            raise InputError(f"{path}: data.relevant_categories names {', '.join(unknown)}, which "
                            f"the file's categories ({', '.join(sorted(names.values()))}) do not have")
        relevant_ids = {i for i, name in names.items() if name in relevant_categories}
    by_file = {record.path: record for record in records}
    by_id: dict[object, Record] = {}
    for number, image in enumerate(coco["images"]):
        where = f"{path} images[{number}]"
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise InputError(f"{where}: needs 'id' and 'file_name'")
        record = by_file.get((root / str(image["file_name"])).resolve())
        if record is not None:
            by_id[image["id"]] = record
    sizes: dict[Path, tuple[int, int]] = {}
    total_clipped = 0
    for number, annotation in enumerate(coco["annotations"]):
        where = f"{path} annotations[{number}]"
        if not isinstance(annotation, dict) or "image_id" not in annotation:
            raise InputError(f"{where}: needs 'image_id'")
        record = by_id.get(annotation["image_id"])
        if record is None:
            continue  # an image that labels.csv does not list
        category = annotation.get("category_id")
        if relevant_ids is not None and category not in irrelevant_ids and category not in relevant_ids:
            continue  # a category the experiment does not use as relevant
        regions = parse_region(annotation, where)
        if record.path not in sizes:
            sizes[record.path] = image_size(record.path, record.source)
        clipped = 0
        for position, region in enumerate(regions):
            if clip:
                regions[position] = clip_region(region, *sizes[record.path])
                clipped += regions[position] != region
            else:
                check_inside(region, *sizes[record.path], where=f"{where} (image {record.path.name})")
        total_clipped += clipped
        target = record.irrelevant if category in irrelevant_ids else record.relevant
        target.extend(regions)
    return total_clipped


def read_folder_format(source: DataSource, seed: int = 0) -> tuple[list[Record], list[str]]:
    """``data.root`` in the folder format; the classes are ``data.classes`` or the sorted labels
    (``seed`` is unused: the folder fixes its images)."""
    categories = list(source.relevant_categories) if source.relevant_categories else None
    records = read_folder(source.root, categories)
    classes = list(source.classes) if source.classes else sorted({r.label for r in records})
    return records, classes
