"""The record of one image, as every data-set loader produces it before any decoding: its file,
class, patient, split and expert-drawn regions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Region:
    """A box, polygon or mask in the original image's pixel coordinates. A mask (``rle``: height,
    width and COCO's compressed run-length ``counts``) covers the whole image it was drawn on."""

    polygon: tuple[tuple[float, float], ...] = ()  # a box is stored as its four corners
    rle: tuple[int, int, str] | None = None

    @classmethod
    def from_box(cls, x: float, y: float, w: float, h: float) -> Region:
        return cls(((x, y), (x + w, y), (x + w, y + h), (x, y + h)))

    @classmethod
    def from_rle(cls, rle: dict) -> Region:
        height, width = rle["size"]
        return cls(rle=(int(height), int(width), rle["counts"]))

    def rle_dict(self) -> dict:
        height, width, counts = self.rle
        return {"size": [height, width], "counts": counts}

    def bounds(self) -> tuple[float, float, float, float]:
        if self.rle is not None:
            from hkd.data.rle import bbox

            x, y, w, h = bbox(self.rle_dict())
            return x, y, x + w, y + h
        xs, ys = zip(*self.polygon)
        return min(xs), min(ys), max(xs), max(ys)


@dataclass
class Record:
    """One image: its file, class and (optional) expert annotations."""

    path: Path
    label: str
    patient_id: str
    split: str | None = None
    relevant: list[Region] = field(default_factory=list)
    irrelevant: list[Region] = field(default_factory=list)
    mask_path: Path | None = None  # a relevant-region mask image, same size as the image
    source: str = ""  # where the record came from, for error messages ("labels.csv row 7")
    metadata: dict[str, str] = field(default_factory=dict)  # e.g. sex, age, view: for subgroup reports

    @property
    def has_prior(self) -> bool:
        return bool(self.relevant) or self.mask_path is not None
