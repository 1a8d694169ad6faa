"""IMIL's edit table: which training images are edited, how, by whom, and with what fill.

It is the one object that holds IMIL's changes to the data. The callback changes it, the training
datasets apply it on read, the checkpoint and ``RUN_DIR/imil/edits.json`` store it, and
propagation, the review queue and the round pictures read it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from hkd.data.masking import black_out, grow
from hkd.imil.masks import decode_mask, encode_mask

SOURCES = ("oracle", "clinician", "propagated")  # who made an edit (Edit.source)
PRECOMPUTED_FILLS = ("blur", "noise", "inpaint")  # costly enough to fill once per round


@dataclass
class Edit:
    """One edited training image: the pixels removed (at ``data.image_size``) and their story."""

    mask: np.ndarray  # (S, S) bool: the pixels to remove
    round: int
    epoch: int
    source: str  # one of SOURCES
    reason: str = ""
    label: int = -1  # class index when it was selected (-1: not selected, e.g. propagated)
    prediction: int = -1
    who: str = ""  # the reviewer's name, when a person made or confirmed it
    confirmed: bool = False  # a propagated proposal a clinician accepted

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"an IMIL edit's source is one of {', '.join(SOURCES)}, not {self.source!r}")

    def to_json(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "mask"}, "mask": encode_mask(self.mask)}

    @classmethod
    def from_json(cls, data: dict) -> Edit:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and k != "mask"}
        return cls(mask=decode_mask(data["mask"]), **values)


@dataclass
class EditTable:
    """``{idx: Edit}`` with the fill and margin every edit is applied with. With ``scope="all"``
    (``imil.edit_scope``, beyond the paper) every image read through the table also loses the union
    of every edit's region (marked or proposed), at the same place in images of every class, so
    neither a positional shortcut nor the edit's position names the class; the union follows from
    the edits, so it is stored with them."""

    fill: str = "zero"  # what replaces removed pixels (hkd.data.masking.FILLS)
    margin: int = 0  # pixels each removed region grows by before the fill
    fill_mean: float = 0.5  # the ``mean`` fill's value
    edits: dict[int, Edit] = field(default_factory=dict)
    scope: str = "sample"  # sample (each edit on its own image, the paper) | all
    # edited images of the costly fills, made once per round by ``precompute`` (not saved)
    filled: dict[int, torch.Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)
    _union: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    # -- the table ---------------------------------------------------------------------------
    def __contains__(self, idx: object) -> bool:
        return idx in self.edits

    def __getitem__(self, idx: int) -> Edit:
        return self.edits[idx]

    def __setitem__(self, idx: int, edit: Edit) -> None:
        self.edits[int(idx)] = edit
        self.changed(int(idx))

    def __delitem__(self, idx: int) -> None:
        del self.edits[idx]
        self.changed(int(idx))

    def changed(self, idx: int | None = None) -> None:
        """Forget what an edit's change makes stale: its filled image, or with ``scope="all"`` (the
        union changes) every filled image; ``None``: everything."""
        if self.scope == "all" or idx is None:
            self.filled, self._union = {}, None
        else:
            self.filled.pop(idx, None)

    def __len__(self) -> int:
        return len(self.edits)

    def __iter__(self):
        return iter(self.edits)

    def renumber(self, moved: dict[int, int]) -> None:
        """Edits take their rows' new numbers (``moved``: old -> new); edits of rows not in it are
        dropped (their image is gone or changed)."""
        self.edits = {moved[i]: edit for i, edit in self.edits.items() if i in moved}
        self.changed()

    def clinician_count(self) -> int:
        """Edits a person (or the simulated clinician) made: what the budget counts."""
        return sum(1 for e in self.edits.values() if e.source != "propagated")

    def clinician_masks(self) -> dict[int, np.ndarray]:
        return {i: e.mask for i, e in self.edits.items() if e.source != "propagated"}

    # -- applying ----------------------------------------------------------------------------
    def union(self) -> np.ndarray | None:
        """``scope="all"``: every edit's region together (None with ``sample`` or no edit)."""
        if self.scope != "all" or not self.edits:
            return None
        if self._union is None:
            self._union = np.logical_or.reduce([edit.mask for edit in self.edits.values()])
        return self._union

    def changes(self, idx: int) -> bool:
        """Whether reading image ``idx`` through the table changes it."""
        return idx in self.edits or self.union() is not None

    def removed_region(self, idx: int) -> torch.Tensor:
        """The (S, S) float mask of pixels the edit removes (with ``scope="all"`` and the union of
        every edit's region), grown by the margin."""
        own = self.edits[idx].mask if idx in self.edits else None
        union = self.union()
        mask = own if union is None else (union if own is None else own | union)
        return grow(torch.from_numpy(mask.astype(np.float32)), self.margin)

    def apply(self, idx: int, image: torch.Tensor) -> torch.Tensor:
        """The cached original ``image`` (C, S, S) in [0, 1] as training sees it after the edit
        (deterministic per idx): from ``precompute`` when it made it, else filled now."""
        filled = self.filled.get(int(idx))
        return filled.clone() if filled is not None else self.fill_image(idx, image)

    def fill_image(self, idx: int, image: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(idx))
        return black_out(image, self.removed_region(idx), self.fill, self.fill_mean, generator)

    def precompute(self, original: Callable[[int], torch.Tensor]) -> None:
        """Fill every edit of a costly fill (blur, noise, inpaint) once, from ``original(idx)``: the
        table, with these images, travels to the DataLoader workers, which then copy rather than
        recompute an inpainting on every read."""
        if self.fill not in PRECOMPUTED_FILLS:
            return
        for idx in self.edits:
            if idx not in self.filled:
                self.filled[idx] = self.fill_image(idx, original(idx))

    # -- storing -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """JSON-safe ``{idx: edit}`` (what the checkpoint keeps)."""
        return {int(i): e.to_json() for i, e in self.edits.items()}

    def load_state_dict(self, state: dict) -> None:
        self.edits = {int(i): Edit.from_json(e) for i, e in state.items()}
        self.changed()

    def to_json(self, rounds: list[dict], pending_round: int | None,
                identities: dict[int, list[str]] | None = None) -> dict:
        """The content of ``edits.json``; with ``identities`` ({row: [file, SHA-256]}), every edit
        names its image."""
        identities = identities or {}

        def image(i: int) -> dict:
            return {"image": identities[i][0], "sha256": identities[i][1]} if i in identities else {}

        return {"version": 2, "fill": self.fill, "margin": self.margin, "fill_mean": self.fill_mean,
                "scope": self.scope,
                "n_edited": len(self.edits), "n_clinician": self.clinician_count(), "rounds": rounds,
                "pending_round": pending_round,
                "edits": [{"idx": i, **image(i), **e.to_json()} for i, e in sorted(self.edits.items())]}

    @classmethod
    def read(cls, path: str | Path) -> EditTable:
        """The table saved in an ``edits.json`` (version 1 files had no fill or margin: zero, 0)."""
        data = json.loads(Path(path).read_text())
        table = cls(fill=data.get("fill", "zero"), margin=int(data.get("margin", 0)),
                    fill_mean=float(data.get("fill_mean", 0.5)), scope=data.get("scope", "sample"))
        table.edits = {int(e["idx"]): Edit.from_json(e) for e in data["edits"]}
        return table


def load_edits(run_dir: str | Path) -> EditTable:
    """The edit table of a run, from ``RUN_DIR/imil/edits.json``."""
    return EditTable.read(Path(run_dir) / "imil" / "edits.json")


def edited_shares(n_edited: int, n_clinician: int, n_train: int) -> dict[str, float]:
    """The share of the training images IMIL edited: all, by clinician marks, propagated."""
    n_train = max(1, n_train)
    return {"edited_share": n_edited / n_train, "clinician_share": n_clinician / n_train,
            "propagated_share": (n_edited - n_clinician) / n_train}
