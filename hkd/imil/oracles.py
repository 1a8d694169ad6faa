"""Who says which regions of a misprediction outlier are irrelevant (``imil.oracle``):

* ``annotations``: a simulated clinician from the data's annotations (``AnnotationOracle``);
* ``queue``: a real one, through the review page (rounds wait on disk, see ``hkd.imil.queue``);
* ``none``: nobody; IMIL only mines and logs the outliers.
"""

from __future__ import annotations

import numpy as np

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
