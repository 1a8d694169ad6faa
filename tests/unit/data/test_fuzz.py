"""Bad data, generated: every input either loads correctly or fails with a InputError that names
where; never another exception, never a wrong prior."""

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hkd.data.decode import decode_image, rasterize
from hkd.data.formats.folder import image_size, parse_region, polygon_area, read_folder
from hkd.data.image_record import Region
from hkd.errors import InputError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=5),
    lambda children: st.lists(children, max_size=8)
    | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20)
annotations = st.fixed_dictionaries({}, optional={"bbox": json_values, "segmentation": json_values,
                                                  "image_id": json_values, "category_id": json_values})


@FUZZ
@given(annotations)
def test_any_annotation_parses_to_real_regions_or_a_named_error(annotation):
    try:
        regions = parse_region(annotation, "annotations[3]")
    except InputError as error:
        assert "annotations[3]" in str(error)
        return
    assert regions
    for region in regions:
        assert len(region.polygon) >= 3 and polygon_area(region) > 0
        assert all(np.isfinite(v) for point in region.polygon for v in point)


def write_image(root: Path, name: str) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 30), 128, np.uint8)).save(root / "images" / name)


@FUZZ
@given(csv_text=st.text(max_size=200), coco=json_values)
def test_any_labels_csv_and_coco_file_load_or_fail_clearly(csv_text, coco):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_image(root, "a.png")
        (root / "labels.csv").write_text(csv_text)
        (root / "annotations.json").write_text(json.dumps(coco))
        try:
            records = read_folder(root)
        except InputError as error:
            assert str(root) in str(error) or "labels.csv" in str(error) or "annotations" in str(error)
            return
        assert all(record.path.is_file() for record in records)


@FUZZ
@given(st.lists(st.tuples(st.floats(-5, 40), st.floats(-5, 30), st.floats(-5, 40), st.floats(-5, 30)),
                min_size=1, max_size=4))
def test_coco_boxes_against_a_real_image_load_inside_it_or_fail(boxes):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_image(root, "a.png")
        (root / "labels.csv").write_text("image,label\nimages/a.png,x\n")
        coco = {"images": [{"id": 1, "file_name": "images/a.png"}],
                "categories": [{"id": 1, "name": "lesion"}],
                "annotations": [{"image_id": 1, "category_id": 1, "bbox": list(box)} for box in boxes]}
        (root / "annotations.json").write_text(json.dumps(coco))
        try:
            (record,) = read_folder(root)
        except InputError as error:
            assert "annotations.json annotations[" in str(error)
            return
        for region in record.relevant:  # whatever loaded lies inside the 30 x 20 image (1 px tolerance)
            x0, y0, x1, y1 = region.bounds()
            assert -1 <= x0 < x1 <= 31 and -1 <= y0 < y1 <= 21


@FUZZ
@given(x=st.floats(0, 90), y=st.floats(0, 50), w=st.floats(2, 60), h=st.floats(2, 40),
       size=st.sampled_from([16, 32, 64]))
def test_rasterised_box_covers_its_area_and_nothing_outside(x, y, w, h, size):
    width, height = 150, 100
    w, h = min(w, width - x), min(h, height - y)
    mask = rasterize([Region.from_box(x, y, w, h)], width, height, size)
    assert mask.shape == (size, size) and set(np.unique(mask)) <= {0, 1}
    sx, sy = size / width, size / height
    expected = w * sx * h * sy
    perimeter = 2 * (w * sx + h * sy) + 4
    assert abs(int(mask.sum()) - expected) <= perimeter  # the area, up to the edge pixels
    ys, xs = np.nonzero(mask)
    assert xs.min() >= np.floor(x * sx) - 1 and xs.max() <= np.ceil((x + w) * sx) + 1
    assert ys.min() >= np.floor(y * sy) - 1 and ys.max() <= np.ceil((y + h) * sy) + 1


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".png", ".jpg", ".dcm", ".tif"]))
def test_random_bytes_are_never_an_image(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_bytes(data)
        with pytest.raises(InputError, match="row 4"):
            decode_image(path, 1, "row 4")


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_truncated_image_is_a_named_error(tmp_path):
    data = png_bytes(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="row 9: cannot decode image .*cut.png"):
        decode_image(tmp_path / "cut.png", 1, "row 9")


def test_exif_rotated_jpeg_is_upright_and_sized_as_decoded(tmp_path):
    pixels = np.zeros((20, 40), np.uint8)
    pixels[:, :5] = 255  # a bright band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=95)
    image = decode_image(tmp_path / "r.jpg", 1)
    assert image.shape == (1, 40, 20)  # displayed upright: portrait
    assert image[0, :5].mean() > 0.8 and image[0, -5:].mean() < 0.2  # the band is now at the top
    assert image_size(tmp_path / "r.jpg", "row 2") == (20, 40)  # boxes are checked in upright pixels


def test_nan_float_image_is_rejected(tmp_path):
    values = np.ones((8, 8), np.float32)
    values[2, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="NaN or infinite"):
        decode_image(tmp_path / "nan.tif", 1)


@pytest.mark.parametrize("shape", [(1, 1), (1, 3000), (4000, 4000)])
def test_one_pixel_and_huge_images_decode_and_resize(tmp_path, shape):
    from hkd.data.decode import resize

    Image.fromarray(np.full(shape, 200, np.uint8)).save(tmp_path / "x.png")
    image = resize(decode_image(tmp_path / "x.png", 1), 32)
    assert image.shape == (1, 32, 32) and np.allclose(image, 200 / 255, atol=1e-3)


def test_palette_and_16_bit_pngs_keep_their_values(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    deep = decode_image(tmp_path / "deep.png", 1)
    assert deep.min() == 0 and deep.max() == 1 and len(np.unique(deep)) == 64
    palette = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L").convert("P")
    palette.save(tmp_path / "pal.png")
    assert len(np.unique(decode_image(tmp_path / "pal.png", 1))) == 64
