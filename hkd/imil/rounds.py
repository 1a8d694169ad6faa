"""One IMIL round as the callback, the checkpoint and ``edits.json`` keep it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MINING, PROPOSALS = "mining", "proposals"  # a round mines outliers, or shows propagated proposals


@dataclass
class Round:
    round: int  # 1-based number, also the review folder's (imil/round_N)
    epoch: int  # the training epoch after which it ran
    kind: str = MINING
    n_train: int | None = None  # mining: training images, mined, mispredicted, selected
    n_mined: int | None = None
    n_mispredicted: int | None = None
    n_flipped: int | None = None  # imil.mine=flips|both: mined samples whose swap view flips the prediction
    n_selected: int | None = None
    selected: list[int] | None = None  # data set rows shown to the oracle
    labels: list[int] | None = None  # their classes and predictions when selected
    predictions: list[int] | None = None
    edited: list[int] | None = None  # rows that got an edit, and those the oracle skipped
    skipped: list[int] | None = None
    propagated: list[int] | None = None  # rows that got a propagated proposal after this round
    generator_updates: int | None = None  # propagation: the generator's optimiser updates this round
    status: str | None = None  # queue oracle: pending review | reviewed; proposals: awaiting / confirmed
    unreviewed: list[int] | None = None
    applied_at: str | None = None
    accepted: list[int] | None = None  # proposals: the clinician's decisions
    rejected: list[int] | None = None
    corrected: list[int] | None = None
    closed_at: str | None = None  # queue rounds: when training took the marks (and closed the round)
    coco_sha256: str | None = None  # the round's marks_coco.json when it was closed (None: there was none)

    ROW_LISTS = ("selected", "edited", "skipped", "propagated", "unreviewed", "accepted", "rejected",
                 "corrected")  # the fields that hold data set rows

    def to_json(self) -> dict:
        """The round's set fields (as ``edits.json`` and the checkpoint have always kept them)."""
        return {key: value for key, value in asdict(self).items()
                if value is not None and not (key == "kind" and value == MINING)}

    @classmethod
    def from_json(cls, data: dict) -> Round:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def renumber(self, moved: dict[int, int]) -> None:
        """Rows take their new numbers (``moved``: old -> new); rows not in it leave every list
        (their image is gone), with their class and prediction."""
        if self.selected is not None:
            kept = [k for k, i in enumerate(self.selected) if i in moved]
            for column in ("labels", "predictions"):
                if getattr(self, column) is not None:
                    setattr(self, column, [getattr(self, column)[k] for k in kept])
        for name in self.ROW_LISTS:
            rows = getattr(self, name)
            if rows is not None:
                setattr(self, name, [moved[i] for i in rows if i in moved])

    def selected_value(self, column: str, idx: int) -> int:
        """``labels`` or ``predictions`` of a selected row; -1 if it was not selected."""
        selected = self.selected or []
        return getattr(self, column)[selected.index(idx)] if idx in selected else -1
