"""Label Studio's JSON export (Export -> JSON: a list of tasks) as COCO, so that its regions go the
way every other annotation does (``hkd.data.formats.folder.apply_coco_dict``).

Each task's image is ``data.image`` (the first ``data`` value when there is no ``image`` key):
local files (``/data/local-files/?d=images/a.png``) keep their path, uploads
(``/data/upload/3/5f2c1a7e-a.png``) and URLs keep their file name. Of a task's annotations the
last one not cancelled counts (several annotators: the latest). Rectangles (rotated ones as
polygons), polygons and brush masks (Label Studio's own RLE, ``hkd.data.ls_rle``) become boxes,
polygons and COCO RLE masks in pixels of ``original_width`` x ``original_height``; each of a
region's labels is one COCO category. Other results (choices, text) are ignored."""

from __future__ import annotations

import math
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse

from hkd.data import ls_rle
from hkd.data.rle import encode as encode_coco_rle
from hkd.errors import InputError

LABEL_STUDIO_EXPORT = "label_studio.json"  # in a folder data set's root, beside labels.csv
SHAPES = ("rectanglelabels", "polygonlabels", "brushlabels")
UPLOAD_PREFIX = 9  # Label Studio names an uploaded file "<8 hex digits>-<its name>"


def task_file(task: dict, where: str) -> str:
    """The image file a task refers to, relative to the data set (see the module's docstring)."""
    data = task.get("data")
    if not isinstance(data, dict) or not data:
        raise InputError(f"{where}: a task needs 'data' with its image")
    reference = str(data.get("image", next(iter(data.values()))))
    url = urlparse(reference)
    if "d" in parse_qs(url.query):  # local files storage
        return unquote(parse_qs(url.query)["d"][0])
    name = PurePosixPath(unquote(url.path)).name
    if url.path.startswith("/data/upload/") and len(name) > UPLOAD_PREFIX and name[UPLOAD_PREFIX - 1] == "-":
        return name[UPLOAD_PREFIX:]
    return name if url.scheme or url.path.startswith("/data/") else reference


def chosen_annotation(task: dict, where: str) -> list[dict]:
    annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not annotations:
        return []
    results = annotations[-1].get("result")
    if not isinstance(results, list):
        raise InputError(f"{where}: an annotation's 'result' must be a list")
    return results


def rectangle(value: dict, width: int, height: int) -> dict:
    x, y = value["x"] * width / 100, value["y"] * height / 100
    w, h = value["width"] * width / 100, value["height"] * height / 100
    angle = math.radians(float(value.get("rotation") or 0))
    if not angle:
        return {"bbox": [x, y, w, h]}
    cos, sin = math.cos(angle), math.sin(angle)  # Label Studio rotates about the top-left corner
    corners = [(x + dx * cos - dy * sin, y + dx * sin + dy * cos)
               for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
    return {"segmentation": [[coordinate for corner in corners for coordinate in corner]]}


def shape(result: dict, where: str) -> dict:
    """One result's region as a COCO annotation's ``bbox`` or ``segmentation``."""
    value = result.get("value") or {}
    try:
        width, height = int(result["original_width"]), int(result["original_height"])
        if result["type"] == "rectanglelabels":
            return rectangle(value, width, height)
        if result["type"] == "polygonlabels":
            return {"segmentation": [[float(v) * size / 100 for point in value["points"]
                                      for v, size in zip(point, (width, height))]]}
        if value.get("format", "rle") != "rle":
            raise InputError(f"{where}: brush format {value.get('format')!r} (hkd reads 'rle')")
        return {"segmentation": encode_coco_rle(ls_rle.decode(value["rle"], height, width, where))}
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{where}: a {result.get('type')} result lacks or garbles {error}") from error


def to_coco(tasks: object, where: str) -> dict:
    """A Label Studio JSON export -> COCO (images, annotations, categories by label)."""
    if not isinstance(tasks, list):
        raise InputError(f"{where}: a Label Studio JSON export is a list of tasks")
    coco: dict = {"images": [], "annotations": [], "categories": []}
    categories: dict[str, int] = {}
    for number, task in enumerate(tasks):
        task_where = f"{where} task {task.get('id', number) if isinstance(task, dict) else number}"
        if not isinstance(task, dict):
            raise InputError(f"{task_where}: not an object")
        image_id = len(coco["images"]) + 1
        coco["images"].append({"id": image_id, "file_name": task_file(task, task_where)})
        for position, result in enumerate(chosen_annotation(task, task_where)):
            if not isinstance(result, dict) or result.get("type") not in SHAPES:
                continue
            result_where = f"{task_where} result {result.get('id', position)}"
            region = shape(result, result_where)
            for label in (result.get("value") or {}).get(result["type"]) or []:
                category = categories.setdefault(str(label), len(categories) + 1)
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": image_id,
                                            "category_id": category, **region})
    coco["categories"] = [{"id": number, "name": name} for name, number in categories.items()]
    return coco
