"""Who says which regions of a misprediction outlier are irrelevant (``imil.oracle``):

* ``annotations``: a simulated clinician from the data's annotations (``AnnotationOracle``);
* ``queue``: a real one, through the review page (rounds wait on disk, see ``hkd.imil.queue``);
* ``sham``: the control (beyond the paper): the same samples marked with random regions of the
  same number and area (``ShamOracle``), so IMIL minus sham is what the clinician's knowledge adds
  over occluding as much of the same images;
* ``none``: nobody; IMIL only mines and logs the outliers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hkd.data.training_images import TrainingImages


class AnnotationOracle:
    """A simulated clinician from the data's annotations: the ``irrelevant`` regions where the
    data marks them (a tag, an arrow, a device); else everything outside the relevant regions
    (annotated or predicted: a far larger change than a clinician's mark); else nothing (the
    sample is skipped)."""

    def __init__(self, images: TrainingImages) -> None:
        self.images = images

    def irrelevant_regions(self, idx: int) -> tuple[np.ndarray | None, str]:
        irrelevant = self.images.irrelevant_mask(idx)
        if irrelevant.any():
            return irrelevant, "irrelevant annotation"
        if self.images.is_annotated(idx):
            outside = ~self.images.relevant_mask(idx)
            if outside.any():
                return outside, "outside relevant regions"
        return None, "no annotation"


class ShamOracle:
    """``imil.oracle=sham``: for each connected region the simulated clinician (``AnnotationOracle``)
    would mark on a sample, a rectangle of the same area (a random aspect ratio between 1:2 and
    2:1, its last row partly filled) at a random place inside the image; a place that would land on
    a rectangle already placed is drawn again, up to ten times. The same number of regions and the
    same area, anywhere: a clinician's knowledge of *where* is all it lacks. The draws come from the
    run's seed and the sample, so a resumed run marks the same."""

    def __init__(self, images: TrainingImages, seed: int = 0) -> None:
        self.clinician, self.seed = AnnotationOracle(images), int(seed)

    def irrelevant_regions(self, idx: int) -> tuple[np.ndarray | None, str]:
        mask, reason = self.clinician.irrelevant_regions(idx)
        if mask is None:
            return None, reason
        rng = np.random.default_rng([self.seed, 43, int(idx)])
        parts, count = ndimage.label(mask)
        sham = np.zeros(mask.shape, dtype=bool)
        for area in np.bincount(parts.ravel(), minlength=count + 1)[1:]:
            for _ in range(10):
                placed = random_rectangle(int(area), mask.shape, rng)
                if not (placed & sham).any():
                    break
            sham |= placed
        return sham, f"sham of: {reason}"


def random_rectangle(area: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A mask of ``shape`` holding exactly ``area`` pixels: a rectangle of a random aspect ratio
    (its last row partly filled) at a random place."""
    height, width = shape
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    rows = int(np.clip(round(np.sqrt(area * aspect)), 1, height))
    cols = int(np.clip(-(-area // rows), 1, width))
    rows = max(rows, -(-area // cols))
    block = np.zeros(rows * cols, dtype=bool)
    block[:area] = True
    top, left = int(rng.integers(0, height - rows + 1)), int(rng.integers(0, width - cols + 1))
    placed = np.zeros(shape, dtype=bool)
    placed[top:top + rows, left:left + cols] = block.reshape(rows, cols)
    return placed


def simulated_oracle(name: str, images: TrainingImages, seed: int) -> AnnotationOracle | ShamOracle | None:
    """The oracle that marks a round at once (``annotations``, ``sham``); None for the others."""
    if name == "annotations":
        return AnnotationOracle(images)
    return ShamOracle(images, seed) if name == "sham" else None
