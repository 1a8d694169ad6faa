"""The folder format: labels, COCO boxes and polygons, masks, image kinds, errors that name the row."""

import json

import numpy as np
import pytest
from conftest import make_folder_dataset, write_png

from hkd.data.cache import build_cache, open_cache
from hkd.data.formats.folder import read_folder
from hkd.errors import InputError
from hkd.run.build import build_datamodule


def test_reads_labels_boxes_polygons_irrelevant_and_masks(tmp_path):
    root = make_folder_dataset(tmp_path)
    coco = json.loads((root / "annotations.json").read_text())
    coco["annotations"].append({"id": 99, "image_id": 1, "category_id": 2,
                                "segmentation": [[30, 30, 38, 30, 38, 38, 30, 38]]})
    (root / "annotations.json").write_text(json.dumps(coco))
    mask = np.zeros((40, 40), np.uint8)
    mask[20:30, 20:30] = 255
    write_png(root / "masks" / "b_0.png", mask)
    records = read_folder(root)
    assert len(records) == 12 and records[0].label == "a"
    assert records[0].relevant[0].bounds() == (4, 8, 14, 18)
    assert records[0].irrelevant[0].bounds() == (30, 30, 38, 38)
    with_mask = [r for r in records if r.mask_path is not None]
    assert [r.path.name for r in with_mask] == ["b_0.png"]
    cache = open_cache(build_cache(records, 20, 1, tmp_path / "cache"))
    # the box (4..14, 8..18) at half size -> rows 4..9, cols 2..7
    assert cache.relevant[0, 4:9, 2:7].all() and cache.relevant[0].sum() < 40
    assert cache.irrelevant[0, 15:19, 15:19].all()
    assert cache.relevant[6, 10:15, 10:15].all()  # the mask file, resized
    assert np.asarray(cache.images[0]).dtype == np.float16


def test_other_labels_csv_columns_are_the_images_metadata(tmp_path):
    records = read_folder(make_folder_dataset(tmp_path, with_sex=True, with_split=True))
    # every column but image, label, patient_id and split
    assert [r.metadata for r in records[:2]] == [{"sex": "F"}, {"sex": "M"}]


def test_reads_16bit_rgb_palette_and_jpeg(tmp_path):
    root = make_folder_dataset(tmp_path, annotations=False)
    ramp = (np.arange(40 * 40).reshape(40, 40) * 30).astype(np.uint16)
    write_png(root / "img" / "a_0.png", ramp)
    write_png(root / "img" / "a_1.png", np.zeros((25, 31, 3), np.uint8) + 128)
    from PIL import Image

    Image.fromarray(np.full((40, 40), 7, np.uint8)).convert("P").save(root / "img" / "a_2.png")
    records = read_folder(root)
    cache = open_cache(build_cache(records, 16, 1, tmp_path / "cache"))
    sixteen = np.asarray(cache.images[0, 0], dtype=np.float32)
    assert sixteen.min() < 0.05 and sixteen.max() > 0.95  # 16-bit range kept, scaled
    assert abs(float(cache.images[1, 0, 5, 5]) - 128 / 255) < 0.01


@pytest.mark.parametrize("breakage, message", [
    (lambda root: (root / "img" / "a_0.png").unlink(), r"labels.csv row 2: image file .*a_0.png"),
    (lambda root: (root / "labels.csv").write_text("file,label\nx.png,a\n"), "missing column.*image"),
    (lambda root: (root / "labels.csv").write_text("image,label\n"), "no rows"),
    (lambda root: (root / "annotations.json").write_text("{not json"), "annotations.json: not valid JSON"),
    (lambda root: (root / "annotations.json").write_text('{"images": []}'), "'annotations' is missing"),
    (lambda root: _edit_box(root, [30, 30, 20, 20]), r"annotations\[0\].*outside the 40x40 image"),
    (lambda root: _edit_box(root, [3, 3, -2, 5]), r"annotations\[0\].*non-positive width"),
    (lambda root: _edit_box(root, [3, 3, 5]), r"annotations\[0\].*bbox must be"),
    (lambda root: _edit_box(root, [3, "x", 5, 5]), r"annotations\[0\].*list of numbers"),
])
def test_bad_input_names_file_and_row(tmp_path, breakage, message):
    root = make_folder_dataset(tmp_path)
    breakage(root)
    with pytest.raises(InputError, match=message):
        read_folder(root)


def _edit_box(root, box):
    coco = json.loads((root / "annotations.json").read_text())
    coco["annotations"][0]["bbox"] = box
    (root / "annotations.json").write_text(json.dumps(coco))


def test_unreadable_image_fails_before_training_naming_it(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data", annotations=False)
    (root / "img" / "b_3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated garbage")
    datamodule = build_datamodule(tiny("data.format=folder", f"data.root={root}"))
    with pytest.raises(InputError, match=r"row 11: cannot decode image .*b_3.png"):
        datamodule.prepare_data()


def test_unknown_label_names_row(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data")
    with pytest.raises(InputError, match=r"labels.csv row 8: label 'b'"):
        build_datamodule(tiny("data.format=folder", f"data.root={root}", "data.classes=[a,c]"))


def test_empty_split_and_missing_class_are_errors(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data", with_split=True)
    text = (root / "labels.csv").read_text().replace(",test", ",train")
    (root / "labels.csv").write_text(text)
    with pytest.raises(InputError, match="test split is empty"):
        build_datamodule(tiny("data.format=folder", f"data.root={root}"))
    lines = (root / "labels.csv").read_text().splitlines()
    fixed = [lines[0]] + [line.replace(",train", ",val") if ",b," in line else line
                          for line in lines[1:]]
    fixed[1] = fixed[1].replace(",train", ",test")
    (root / "labels.csv").write_text("\n".join(fixed) + "\n")
    with pytest.raises(InputError, match="class.*b have no sample in the train split"):
        build_datamodule(tiny("data.format=folder", f"data.root={root}"))


def test_split_column_partly_filled_is_an_error(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data", with_split=True)
    lines = (root / "labels.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ","
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="row 4: 'split' is empty"):
        build_datamodule(tiny("data.format=folder", f"data.root={root}"))


def test_generated_split_groups_patients_and_stratifies(tmp_path, tiny):
    root = make_folder_dataset(tmp_path / "data", n_per_class=20)
    datamodule = build_datamodule(tiny("data.format=folder", f"data.root={root}"))
    by_patient = {}
    for record, split in zip(datamodule.records, datamodule.splits):
        by_patient.setdefault(record.patient_id, set()).add(split)
    assert all(len(s) == 1 for s in by_patient.values())
    for label in ("a", "b"):
        splits = [s for r, s in zip(datamodule.records, datamodule.splits) if r.label == label]
        assert {"train", "val", "test"} <= set(splits)
    again = build_datamodule(tiny("data.format=folder", f"data.root={root}"))
    assert again.splits == datamodule.splits  # deterministic from the seed


def test_rle_masks_load_compressed_or_not_and_bad_ones_name_the_annotation(tmp_path):
    from hkd.data.decode import rasterize
    from hkd.data.rle import encode

    root = make_folder_dataset(tmp_path / "data", n_per_class=2, size=40)
    coco = json.loads((root / "annotations.json").read_text())
    mask = np.zeros((40, 40), bool)
    mask[5:15, 20:35] = True
    compressed = encode(mask)
    runs, value, count = [], False, 0  # column-major uncompressed counts, as CVAT writes them
    for pixel in mask.T.reshape(-1):
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    runs.append(count)
    coco["annotations"][0] = {**coco["annotations"][0], "segmentation": compressed}
    coco["annotations"][1] = {**coco["annotations"][1], "segmentation": {"size": [40, 40], "counts": runs}}
    (root / "annotations.json").write_text(json.dumps(coco))
    records = read_folder(root)
    for record in records[:2]:
        assert np.array_equal(rasterize(record.relevant, 40, 40, 40) > 0, mask)
    for bad, message in ((dict(compressed, size=[30, 40]), "invalid RLE segmentation"),
                         (encode(np.ones((30, 40), bool)), "RLE mask is 40x30, the image 40x40"),
                         ({"size": [40, 40], "counts": [1600]}, "the RLE mask is empty"),
                         ({"size": [40, 40], "counts": [5, 5]}, "cover 10 pixels, not 1600"),
                         ({"size": [40], "counts": "x"}, "needs 'size': \\[height, width\\]")):
        coco["annotations"][0]["segmentation"] = bad
        (root / "annotations.json").write_text(json.dumps(coco))
        with pytest.raises(InputError, match=r"annotations\[0\].*" + message):
            read_folder(root)
