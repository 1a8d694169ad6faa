"""What a clinician sees goes through training's decoder: a mark drawn on the review page's image
of a DICOM (MONOCHROME1), a 16-bit PNG or an EXIF-rotated JPEG covers the same anatomy in the
training tensor."""

import csv

import numpy as np
import pytest
from dicom_files import write_dicom
from PIL import Image

from hkd.config import load_config
from hkd.imil.pictures import DISPLAY_MAX, display_image
from hkd.imil.queue import rasterize_marks
from hkd.run.build import build_datamodule

SIZE = 32


def anatomy(height: int, width: int) -> np.ndarray:
    """A dark image with one bright square at a known place of the *upright* anatomy."""
    upright = np.full((height, width), 30.0)
    upright[height // 5:height // 5 + height // 4, width // 2:width // 2 + width // 4] = 220.0
    return upright


def write_files(root):
    rows = []
    upright = anatomy(300, 200)
    write_dicom(root / "mono1.dcm", (4000 - upright * 15).astype(np.uint16), photometric="MONOCHROME1")
    Image.fromarray((upright * 250).astype(np.uint16)).save(root / "deep.png")
    stored = np.rot90(upright, k=1).astype(np.uint8)  # stored rotated; EXIF 6 turns it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(stored)).save(root / "rotated.jpg", exif=exif, quality=98)
    big = anatomy(2400, 1600)  # larger than the page shows
    Image.fromarray(big.astype(np.uint8)).save(root / "big.png")
    names = ("mono1.dcm", "deep.png", "rotated.jpg", "big.png")
    for name in names:  # a second copy of each kind, for the other splits
        (root / f"copy_{name}").write_bytes((root / name).read_bytes())
    for n, name in enumerate([*names, *(f"copy_{name}" for name in names)]):
        rows.append({"image": name, "label": "ab"[n % 2], "patient_id": f"p{n}",
                     "split": ("train", "train", "train", "train", "val", "val", "test", "test")[n]})
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = write_files(tmp_path_factory.mktemp("kinds"))
    cfg = load_config("quickstart", ["data.format=folder", f"data.root={root}", f"data.image_size={SIZE}",
                                     f"data.cache_dir={root / 'cache'}"])
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule.training_images()


@pytest.mark.parametrize("position", range(4))
def test_a_mark_on_the_page_covers_the_same_anatomy_in_training(images, position):
    idx = int(images.indices[position])
    shown = np.asarray(display_image(images, idx))[..., 0].astype(float)
    height, width = shown.shape
    assert max(height, width) <= DISPLAY_MAX and height > width  # upright, portrait, at most 1024 px
    assert shown.std() > 30  # a 16-bit image is not washed out, a DICOM not blank
    ys, xs = np.nonzero(shown > 128)  # the clinician marks the bright square they see
    mark = {"type": "rect", "x": float(xs.min()), "y": float(ys.min()),
            "w": float(xs.max() - xs.min() + 1), "h": float(ys.max() - ys.min() + 1)}
    mask = rasterize_marks([mark], width, height, SIZE)
    training = images.original(idx)[0].numpy()
    square = training > 0.5  # the same bright square, where training sees it
    assert square.any() and (mask & square).sum() >= 0.9 * square.sum()  # the mark covers it ...
    assert (mask & ~square).sum() <= 0.35 * mask.sum()  # ... and little else (resampled edges)
