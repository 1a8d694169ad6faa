"""IMIL's edits and marks are bound to their images (file and content hash, ``hkd.data.identity``), not
only to their rows: on resume, rows that moved are found again by their file, and an image that is
gone or whose content changed is a named error, or (``changed_images="drop"``) dropped with a
warning naming it."""

from __future__ import annotations

import logging

from hkd.config.choices import CHANGED_IMAGES, one_of
from hkd.data.training_images import TrainingImages
from hkd.errors import InputError
from hkd.imil.queue import TakenMark
from hkd.imil.state import IMILState

log = logging.getLogger(__name__)


class ImageBinding:
    """Finds the rows of marked and edited images again, on the training images as they are now."""

    def __init__(self, images: TrainingImages, changed_images: str = "error") -> None:
        self.images = images
        self.changed_images = one_of("changed_images", changed_images, CHANGED_IMAGES)

    def locate(self, name: str, digest: str) -> tuple[int | None, str]:
        """The row of the image ``name`` with content ``digest`` now, or (None, what is wrong)."""
        row = self.images.row_of(name)
        if row is None:
            return None, f"{name} is no longer in the data set"
        if self.images.identity(row)[1] != digest:
            return None, f"{name} was replaced (its content differs from the image that was marked)"
        return row, ""

    def settle(self, problems: list[str], what: str) -> None:
        """Images that are gone or changed: a named error, or their edits and marks dropped with a
        warning naming each."""
        if not problems:
            return
        if self.changed_images == "error":
            more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise InputError(f"IMIL {what} are bound to their images, and {len(problems)} of those images "
                             f"no longer match: {'; '.join(problems[:10])}{more}. Restore the images, or "
                             "resume with imil.changed_images=drop to drop their edits and marks")
        for problem in problems:
            log.warning("IMIL: dropping the edit or mark of %s", problem)

    def rebind(self, state: IMILState) -> None:
        """After loading a checkpoint: every row IMIL has touched is found again by its image (rows
        that moved get their new number)."""
        moved, problems = {}, []
        for row, (name, digest) in state.identities.items():
            new, problem = self.locate(name, digest)
            if new is None:
                problems.append(problem)
            else:
                moved[row] = new
        self.settle(problems, "edits and reviewed samples")
        if problems or any(row != new for row, new in moved.items()):
            state.renumber(moved)

    def rows_of(self, taken: list[TakenMark]) -> dict[int, TakenMark]:
        """{row now: mark} of a round's marks, each found by its sample's image."""
        rows, problems = {}, []
        for mark in taken:
            if "file" not in mark.sample:  # a round written before samples carried their image
                rows[int(mark.sample["idx"])] = mark
                continue
            row, problem = self.locate(mark.sample["file"], mark.sample["sha256"])
            if row is None:
                problems.append(f"{problem} (sample {mark.sample['id']})")
            else:
                rows[row] = mark
        self.settle(problems, "marks")
        return rows
