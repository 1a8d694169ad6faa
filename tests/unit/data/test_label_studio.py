"""Label Studio: its brush RLE and its JSON export, on files made by Label Studio's own converter
(tests/fixtures/label_studio/make_fixtures.py), read into a folder data set's regions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hkd.data import ls_rle
from hkd.data.formats.folder import read_folder
from hkd.data.label_studio import to_coco
from hkd.data.rle import decode as decode_coco_rle
from hkd.errors import InputError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "label_studio"


def export() -> list:
    return json.loads((FIXTURES / "export.json").read_text())


@pytest.mark.parametrize("case", json.loads((FIXTURES / "rle_roundtrip.json").read_text()),
                         ids=lambda case: f"{case['height']}x{case['width']}")
def test_brush_rle_decodes_and_encodes_as_label_studio_does(case):
    mask = np.asarray(case["mask"], dtype=np.uint8) > 0
    assert (ls_rle.decode(case["rle"], case["height"], case["width"], "case") == mask).all()
    assert ls_rle.encode(mask) == case["rle"]  # byte for byte the converter's encoding


def test_a_broken_brush_rle_is_named():
    rle = json.loads((FIXTURES / "rle_roundtrip.json").read_text())[1]["rle"]
    with pytest.raises(InputError, match="task 7: the brush RLE ends in the middle"):
        ls_rle.decode(rle[: len(rle) // 2], 33, 17, "task 7")
    with pytest.raises(InputError, match=r"holds 2244 values, not 16 x 33 x 4"):
        ls_rle.decode(rle, 16, 33, "task 7")


def test_the_export_becomes_the_converters_coco_and_the_painted_masks():
    mine = to_coco(export(), "export.json")
    theirs = json.loads((FIXTURES / "coco" / "result.json").read_text())
    names = {c["id"]: c["name"] for c in mine["categories"]}
    files = {i["id"]: i["file_name"] for i in mine["images"]}
    assert list(files.values()) == ["images/a.png", "b.png", "images/c.png"]  # local file, upload, local
    by_image = {}
    for annotation in mine["annotations"]:
        labelled = (names[annotation["category_id"]], annotation)
        by_image.setdefault(files[annotation["image_id"]], []).append(labelled)
    assert [label for label, _ in by_image["images/a.png"]] == ["finding", "irrelevant"]  # not the cancelled
    box, rotated = (annotation for _, annotation in by_image["images/a.png"])
    their_box, their_rotated, their_polygon = theirs["annotations"]
    assert box["bbox"] == pytest.approx(their_box["bbox"])
    corners = np.asarray(rotated["segmentation"][0]).reshape(4, 2)
    low, high = corners.min(0), corners.max(0)
    assert [*low, *(high - low)] == pytest.approx(their_rotated["bbox"])  # the rotated box's extent
    (label, polygon), = by_image["images/c.png"]  # the choices result is not a region
    assert label == "lung" and polygon["segmentation"][0] == pytest.approx(their_polygon["segmentation"][0])
    for (label, annotation), painted in zip(by_image["b.png"], ("b_finding.png", "b_irrelevant.png")):
        expected = np.asarray(Image.open(FIXTURES / "masks" / painted)) > 0
        assert label in painted and (decode_coco_rle(annotation["segmentation"]) == expected).all()


def folder_data_set(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(FIXTURES / "images", root / "images")
    shutil.copy(FIXTURES / "labels.csv", root / "labels.csv")
    shutil.copy(FIXTURES / "export.json", root / "label_studio.json")
    return root


def test_a_folder_data_set_takes_its_regions_from_a_label_studio_export(tmp_path):
    records = {r.path.name: r for r in read_folder(folder_data_set(tmp_path))}
    assert (len(records["a.png"].relevant), len(records["a.png"].irrelevant)) == (1, 1)
    assert records["a.png"].relevant[0].bounds() == pytest.approx((10, 4, 30, 20))
    b = records["b.png"]  # an upload: matched by its file name
    assert b.relevant[0].rle is not None and b.irrelevant[0].bounds() == pytest.approx((0, 0, 8, 8))
    assert len(records["c.png"].relevant) == 1
    lungs_only = {r.path.name: r for r in read_folder(folder_data_set(tmp_path / "again"), ["lung"])}
    assert [len(lungs_only[name].relevant) for name in ("a.png", "b.png", "c.png")] == [0, 0, 1]
    assert len(lungs_only["b.png"].irrelevant) == 1  # "irrelevant" always counts


def test_a_result_outside_the_format_is_named(tmp_path):
    tasks = export()
    del tasks[2]["annotations"][0]["result"][0]["original_width"]
    with pytest.raises(InputError, match="task 3 result .*: a polygonlabels result lacks or garbles"):
        to_coco(tasks, "export.json")
    with pytest.raises(InputError, match="a Label Studio JSON export is a list of tasks"):
        to_coco({"tasks": []}, "export.json")
