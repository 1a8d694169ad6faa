"""Who says which regions of a misprediction outlier are irrelevant."""

from __future__ import annotations

import numpy as np

from hkd.data.datamodule import PneumoniaDataModule


class AnnotationOracle:
    """A simulated clinician from the data's annotations: the ``irrelevant`` regions where the
    data marks them (a tag, an arrow, a device); else everything outside the relevant regions
    (a far larger change than a clinician's mark); else nothing (the sample is skipped)."""

    def __init__(self, datamodule: PneumoniaDataModule) -> None:
        self.cache = datamodule.datasets["train"].cache
        self.has_annotations = np.array([r.has_prior for r in datamodule.records])

    def irrelevant_regions(self, idx: int) -> tuple[np.ndarray | None, str]:
        irrelevant = np.asarray(self.cache.irrelevant[idx]) > 0
        if irrelevant.any():
            return irrelevant, "irrelevant annotation"
        if self.has_annotations[idx]:
            outside = np.asarray(self.cache.relevant[idx]) == 0
            if outside.any():
                return outside, "outside relevant regions"
        return None, "no annotation"
