"""What IMIL has done so far, as the checkpoint and ``RUN_DIR/imil/edits.json`` keep it: the edits,
the samples shown to the oracle, the rejected proposals, the rounds and the image behind every row
touched."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hkd.atomic import atomic_write_json
from hkd.data.training_images import TrainingImages
from hkd.imil.edits import Edit, EditTable
from hkd.imil.rounds import MINING, Round

Mark = tuple[int, "np.ndarray | None", str, str]  # (row, mask or None: skipped, reason, who)


@dataclass
class IMILState:
    table: EditTable  # the edits (their fill too), read by the training datasets
    reviewed: set[int] = field(default_factory=set)  # mined and shown to the oracle (edited or skipped)
    rejected: set[int] = field(default_factory=set)  # propagated proposals a clinician rejected: never again
    rounds: list[Round] = field(default_factory=list)
    pending_round: int | None = None  # a queue round waiting for review
    identities: dict[int, list[str]] = field(default_factory=dict)  # row -> [image file, SHA-256]

    def state_dict(self) -> dict:
        return {"edits": self.table.state_dict(), "reviewed": sorted(self.reviewed),
                "rejected": sorted(self.rejected), "rounds": [r.to_json() for r in self.rounds],
                "pending_round": self.pending_round,
                "identities": {int(row): list(identity) for row, identity in self.identities.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.table.load_state_dict(state["edits"])
        self.reviewed = set(state["reviewed"])
        self.rejected = set(state.get("rejected", []))
        self.rounds = [Round.from_json(r) for r in state["rounds"]]
        self.pending_round = state.get("pending_round")
        self.identities = {int(row): list(identity) for row, identity in state.get("identities", {}).items()}

    def mining_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.kind == MINING)

    def record_edits(self, record: Round, marks: Iterable[Mark], source: str) -> None:
        """A round's marks become edits (a mark without a mask: skipped); every marked sample
        counts as reviewed."""
        record.edited, record.skipped = [], []
        for i, mask, reason, who in marks:
            self.reviewed.add(i)
            if mask is None:
                record.skipped.append(i)
                continue
            self.table[i] = Edit(mask=mask, round=record.round, epoch=record.epoch, source=source,
                                 reason=reason, who=who, label=record.selected_value("labels", i),
                                 prediction=record.selected_value("predictions", i))
            record.edited.append(i)

    def renumber(self, moved: dict[int, int]) -> None:
        """Rows take their new numbers; rows not in ``moved`` (their image is gone) leave."""
        self.table.renumber(moved)
        self.reviewed = {moved[i] for i in self.reviewed if i in moved}
        self.rejected = {moved[i] for i in self.rejected if i in moved}
        self.identities = {moved[i]: identity for i, identity in self.identities.items() if i in moved}
        for record in self.rounds:
            record.renumber(moved)

    def publish(self, images: TrainingImages, edits_file: Path | None) -> None:
        """Bind every row touched to its image, fill the changed edits once (costly fills) and write
        the table (which the datasets already read) to ``edits_file`` (None: not this rank)."""
        shown = (i for record in self.rounds for i in record.selected or [])  # incl. a pending round's
        for row in {*self.table, *self.reviewed, *self.rejected, *shown} - self.identities.keys():
            self.identities[row] = list(images.identity(row))
        self.table.precompute(images.original)
        if edits_file is not None:
            atomic_write_json(edits_file, self.table.to_json([r.to_json() for r in self.rounds],
                                                             self.pending_round, self.identities))
