"""IMIL's queue oracle: a round's samples written for the review page, and on resume the clinician's
marks taken (the round closed, later saves refused: ``hkd.imil.marks_store``); propagated proposals
shown as a round of their own, accepted, corrected or rejected."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image

from hkd.data.identity import file_sha256
from hkd.data.training_images import TrainingImages
from hkd.errors import InputError
from hkd.explanations.cam import explain_batch
from hkd.imil.binding import ImageBinding
from hkd.imil.marks_store import MarksStore
from hkd.imil.pictures import display_image, heatmap, proposal_overlay
from hkd.imil.queue import MARKS_COCO, TakenMark, read_marks, round_dir, write_round
from hkd.imil.rounds import PROPOSALS, Round
from hkd.imil.state import IMILState

AWAITING_CONFIRMATION = "applied, awaiting confirmation"  # a proposals round nobody reviewed yet


class ReviewRounds:
    """The rounds of ``run_dir/imil/round_N`` for the training images, kept in ``state``."""

    def __init__(self, run_dir: Path, images: TrainingImages, state: IMILState,
                 binding: ImageBinding) -> None:
        self.run_dir, self.images, self.state, self.binding = Path(run_dir), images, state, binding

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, record: Round) -> None:
        """The round's samples for review (rank 0 writes); the round waits for them."""
        if trainer.is_global_zero:
            write_round(round_dir(self.run_dir, record.round), record.round, record.epoch,
                        self.samples(pl_module, record.selected))
        record.status = "pending review"
        self.state.rounds.append(record)
        self.state.pending_round = record.round

    def samples(self, pl_module: L.LightningModule, selected: list[int]) -> list[dict]:
        """The review page's samples: original image, CAM of the predicted class, prediction."""
        dataset = self.images.evaluation_dataset()
        position = {int(i): p for p, i in enumerate(dataset.indices)}
        samples = [dataset[position[i]] for i in selected]
        batch = {"image": torch.stack([s["image"] for s in samples]),
                 "label": torch.tensor([s["label"] for s in samples])}
        probabilities, cams = explain_batch(pl_module, batch, of_prediction=True)
        pl_module.train()
        classes = self.images.classes
        out = []
        for sample, probability, cam in zip(samples, probabilities, cams):
            image = display_image(self.images, sample["idx"])
            cam_image = Image.fromarray((cam.numpy() * 255).astype(np.uint8))
            cam_image = cam_image.resize(image.size, Image.BILINEAR)
            name, digest = self.images.identity(int(sample["idx"]))
            out.append({"idx": sample["idx"], "file": name, "sha256": digest,
                        "label": classes[sample["label"]],
                        "prediction": classes[int(probability.argmax())],
                        "confidence": float(probability.max()), "image": image,
                        "cam": heatmap(cam_image)})
        return out

    def take_review(self) -> Round:
        """On resume: the clinician's marks of the pending round become edits."""
        number, record = self.state.pending_round, self.state.rounds[-1]
        folder = round_dir(self.run_dir, number)
        if not read_marks(folder, self.images.image_size):
            raise InputError(f"IMIL round {number} has no marks yet: review {folder} first "
                             f"(hkd review {self.run_dir}), then resume")
        taken = self.close(folder, record)
        self.state.record_edits(record, ((i, t.mask, t.mark.get("comment", ""), t.mark.get("who", ""))
                                         for i, t in taken.items()), "clinician")
        record.status = "reviewed"
        record.unreviewed = [i for i in record.selected if i not in taken]
        record.applied_at = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.state.pending_round = None
        return record

    def write_proposals(self, trainer: L.Trainer, record: Round) -> None:
        """Show the applied proposals in the review page, as a round of their own, so the
        clinician can accept, correct or reject them; decisions apply at the next resume."""
        number = len(self.state.rounds) + 1
        chosen = record.propagated
        if trainer.is_global_zero:
            samples = self.samples(trainer.lightning_module, chosen)
            for sample in samples:
                mask = Image.fromarray((self.state.table[sample["idx"]].mask * 255).astype(np.uint8))
                sample["proposal"] = proposal_overlay(mask.resize(sample["image"].size, Image.NEAREST))
            write_round(round_dir(self.run_dir, number), number, record.epoch, samples, kind=PROPOSALS)
        self.state.rounds.append(Round(round=number, kind=PROPOSALS, epoch=record.epoch, selected=chosen,
                                       status=AWAITING_CONFIRMATION))

    def take_confirmations(self) -> None:
        """Accepted proposals stay (confirmed), rejected ones are undone, corrected ones take the
        clinician's drawing; proposals nobody looked at stay applied."""
        table = self.state.table
        for record in self.state.rounds:
            if record.kind != PROPOSALS or record.status != AWAITING_CONFIRMATION:
                continue
            folder = round_dir(self.run_dir, record.round)
            if not read_marks(folder, self.images.image_size):
                continue  # nobody has looked at the proposals yet: they stay applied, the round open
            decisions: dict[str, list[int]] = {"accepted": [], "rejected": [], "corrected": []}
            for i, taken in self.close(folder, record).items():
                if i not in table:
                    continue
                edit, mask, mark = table[i], taken.mask, taken.mark
                if mark.get("status") == "accepted":
                    edit.confirmed, edit.who = True, mark.get("who", "")
                    decisions["accepted"].append(i)
                elif mask is None:
                    del table[i]
                    self.state.rejected.add(i)
                    decisions["rejected"].append(i)
                else:
                    edit.mask, edit.source, edit.who = mask, "clinician", mark.get("who", "")
                    edit.reason = "corrected proposal"
                    decisions["corrected"].append(i)
            record.status = "confirmed"
            record.accepted, record.rejected, record.corrected = (decisions[key] for key in
                                                                  ("accepted", "rejected", "corrected"))

    def close(self, folder: Path, record: Round) -> dict[int, TakenMark]:
        """Close the round (later saves are refused) and return its marks, by row: those taken
        when it was closed, which a run killed after closing takes again."""
        closure = MarksStore(folder).close()
        coco = folder / MARKS_COCO
        if record.closed_at is None:
            record.closed_at = closure["when"]
            record.coco_sha256 = file_sha256(coco) if coco.is_file() else None
        return self.binding.rows_of(read_marks(folder, self.images.image_size, closure["taken"]))

    def refuse_marks_after_closing(self) -> None:
        """A ``marks_coco.json`` written into a round after training closed it would never be used:
        say so instead of dropping it silently."""
        for record in self.state.rounds:
            coco = round_dir(self.run_dir, record.round) / MARKS_COCO
            if record.closed_at and coco.is_file() and file_sha256(coco) != record.coco_sha256:
                raise InputError(f"{coco} changed after round {record.round} was closed at "
                                 f"{record.closed_at}, when training took its marks: the new marks would "
                                 "never be used. Move them to an open round (or restore the file)")
