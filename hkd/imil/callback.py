"""IMIL (Rao et al. 2024) as a Lightning callback: mine misprediction outliers during training,
ask an oracle for their irrelevant regions, black those out and train on the edited samples.

The edits are data: an ``EditTable`` handed to the training datasets (applied on read), saved in
this callback's checkpoint state and in ``RUN_DIR/imil/edits.json``. Every edit, mark and reviewed
sample is bound to its image's identity (file and content hash, ``hkd.data.identity``), not only
its row: on resume, rows that moved are found again by their file, and an image that is gone or
whose content changed is a named error (or, with ``changed_images="drop"``, its edit is dropped
with a warning naming it). Training closes a queue round when it takes its marks
(``hkd.imil.marks_store``): later saves to it are refused. Under DDP every rank mines its
shard, the results are gathered and de-duplicated, and every rank applies the same selection (a
pure function); the train loader is rebuilt each epoch so workers see the edits. The callback reads
the training data only through ``TrainingImages`` (``datamodule.training_images()``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from PIL import Image

from hkd.atomic import atomic_write_json
from hkd.choices import CHANGED_IMAGES, EDIT_MODES, MINE_MODES
from hkd.data.counterfactual import CounterfactualSettings, partners_by_row
from hkd.data.identity import file_sha256
from hkd.data.training_images import TrainingImages
from hkd.errors import InputError
from hkd.explanations.cam import explain_batch
from hkd.imil.edits import Edit, EditTable, edited_shares
from hkd.imil.marks_store import MarksStore
from hkd.imil.oracles import AnnotationOracle
from hkd.imil.pictures import display_image, heatmap, proposal_overlay, round_pictures
from hkd.imil.propagation import Propagation, Proposals, candidates, propose_irrelevant_regions
from hkd.imil.queue import MARKS_COCO, TakenMark, read_marks, round_dir, write_round
from hkd.imil.rounds import MINING, PROPOSALS, Round
from hkd.imil.selection import choose, deduplicate, round_limit, total_budget
from hkd.models.backbone import features_and_logits
from hkd.models.frozen import channels_last_copy

AWAITING_CONFIRMATION = "applied, awaiting confirmation"  # a proposals round nobody reviewed yet
log = logging.getLogger(__name__)


class IMILCallback(Callback):
    """IMIL during training, with plain settings (built by ``hkd.run.build.build_imil_callback``):
    ``table`` holds the edits and their fill; ``oracle`` is ``annotations`` (simulated clinician),
    ``queue`` (the review page) or ``none``; ``budget`` is the share of the training set a clinician
    may mark over the run; rounds run after ``start_epoch`` and every ``every_n_epochs``, at most
    ``rounds`` of them; ``propagation`` (or None) proposes regions from the marks so far;
    ``changed_images`` says what a resume does with an edit whose image is gone or changed;
    ``mine`` which training samples a round offers the oracle: ``mispredicted`` (the paper),
    ``flips`` (those whose decision the ``swap`` view changes, beyond the paper) or ``both``."""

    def __init__(self, run_dir: str | Path, table: EditTable, *, oracle: str = "annotations",
                 budget: float = 0.04, start_epoch: int = 2, every_n_epochs: int = 2,
                 rounds: int | None = None, propagation: Propagation | None = None,
                 log_images: bool = True, changed_images: str = "error", mine: str = "mispredicted",
                 swap: CounterfactualSettings | None = None, seed: int = 0, edit: str = "replace") -> None:
        if changed_images not in CHANGED_IMAGES:
            raise ValueError(f"changed_images is one of {', '.join(CHANGED_IMAGES)}, not {changed_images!r}")
        self.run_dir = Path(run_dir)
        self.table = table
        self.oracle, self.budget, self.max_rounds = oracle, float(budget), rounds
        self.start_epoch, self.every_n_epochs = int(start_epoch), max(1, int(every_n_epochs))
        self.propagation = propagation
        self.generator = None  # the last round's prior generator (imil.propagate_warm_start)
        self.log_images = log_images
        self.changed_images = changed_images
        if edit not in EDIT_MODES:
            raise ValueError(f"edit is one of {', '.join(EDIT_MODES)}, not {edit!r}")
        self.edit = edit
        if mine not in MINE_MODES:
            raise ValueError(f"mine is one of {', '.join(MINE_MODES)}, not {mine!r}")
        self.mine_mode, self.swap, self.seed = mine, swap or CounterfactualSettings(), int(seed)
        self.partners: dict[int, int] | None = None  # training rows' swap partners (drawn once)
        self.identities: dict[int, list[str]] = {}  # row -> [image file, SHA-256] of every row touched
        self.reviewed: set[int] = set()  # mined and shown to the oracle (edited or skipped)
        self.rejected: set[int] = set()  # propagated proposals a clinician rejected: never again
        self.rounds: list[Round] = []
        self.pending_round: int | None = None
        self.waiting_for_review = False
        self.images: TrainingImages | None = None

    @property
    def state_key(self) -> str:
        return "IMILCallback"

    # -- state -------------------------------------------------------------------------------
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

    # -- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.images = trainer.datamodule.training_images()
        if self.images.keeps_workers and not trainer.reload_dataloaders_every_n_epochs:
            raise ValueError("IMIL edits would be lost: persistent DataLoader workers keep their "
                             "copy of the dataset; set reload_dataloaders_every_n_epochs=1 or "
                             "data.persistent_workers=false")
        if self.edit == "add" and not trainer.reload_dataloaders_every_n_epochs:
            raise ValueError("imil.edit=add grows the training set after a round: the training loader "
                             "must be rebuilt, set reload_dataloaders_every_n_epochs=1")
        self.images.use_edits(self.table, add=self.edit == "add")
        self._rebind_rows()
        self._refuse_marks_after_closing()
        if self.pending_round is not None:
            self._apply_confirmations()
            self._apply_review(trainer, self.pending_round)
        self._publish(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        due = epoch >= self.start_epoch and (epoch - self.start_epoch) % self.every_n_epochs == 0
        last_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs - 1
        mining_rounds = sum(1 for r in self.rounds if r.kind == MINING)
        if not due or last_epoch or (self.max_rounds and mining_rounds >= self.max_rounds):
            return
        n_train = len(self.images)
        limit = round_limit(total_budget(self.budget, n_train), self.table.clinician_count(),
                            self.max_rounds)
        if limit <= 0 and not self._can_propagate():  # nothing to mark, nothing left to propose
            return
        idx, labels, predictions, losses, drops, flipped = self.mine(trainer, pl_module)
        chosen = choose(self.mine_mode, idx, labels, predictions, losses, drops, flipped > 0, self.reviewed,
                        limit)
        record = Round(round=len(self.rounds) + 1, epoch=epoch, n_train=n_train, n_mined=len(idx),
                       n_mispredicted=int((predictions != labels).sum()),
                       n_flipped=int((flipped > 0).sum()) if self.mine_mode != "mispredicted" else None,
                       n_selected=len(chosen),
                       selected=chosen, labels=[int(labels[idx == i][0]) for i in chosen],
                       predictions=[int(predictions[idx == i][0]) for i in chosen])
        if self.oracle == "queue" and chosen:
            self._queue_round(trainer, pl_module, record)
            return
        record.edited, record.skipped = [], []
        if self.oracle == "annotations":
            oracle = AnnotationOracle(self.images)
            self._record_edits(record, ((i, *oracle.irrelevant_regions(i), "") for i in chosen), "oracle")
        self._propagate_after(trainer, record)
        self.rounds.append(record)
        self._publish(trainer)
        self._log_round(trainer, pl_module, record)

    def _record_edits(self, record: Round, marks, source: str) -> None:
        """The round's marks ``(idx, mask or None, reason, who)`` become edits (None: skipped);
        every marked sample counts as reviewed."""
        for i, mask, reason, who in marks:
            self.reviewed.add(i)
            if mask is None:
                record.skipped.append(i)
                continue
            self.table[i] = Edit(mask=mask, round=record.round, epoch=record.epoch, source=source,
                                 reason=reason, who=who, label=record.selected_value("labels", i),
                                 prediction=record.selected_value("predictions", i))
            record.edited.append(i)

    def _can_propagate(self) -> bool:
        """Propagation is on, a clinician marked something, and some training image is neither
        edited nor rejected (once every image is, a round would train the model for nothing)."""
        return (self.propagation is not None and self.table.clinician_count() > 0
                and len(candidates(self.images, self.table, self.rejected)) > 0)

    def _propagate_after(self, trainer: L.Trainer, record: Round) -> None:
        if self._can_propagate():
            record.propagated = self._propagate(trainer, record)

    # -- mining ------------------------------------------------------------------------------
    @torch.inference_mode()
    def mine(self, trainer: L.Trainer, pl_module: L.LightningModule):
        """(idx, label, prediction, loss, drop, flipped) of every training sample that can still be
        selected (never shown to the oracle), identical on all ranks. Images come straight from the
        cache in whole batches (no augmentation, no masks: the mining pass is only forward), through
        an eval-mode channels-last copy of the network (the model in training is not touched). With
        ``mine`` flips or both, each sample's swap view is scored too: ``drop`` is how much it
        lowers the true class's probability (NaN without a region), ``flipped`` whether it changes
        the predicted class."""
        dataset = self.images.evaluation_dataset()
        selectable = np.array([i for i in dataset.indices if i not in self.reviewed], dtype=np.int64)
        if trainer.world_size > 1:  # equal shards (padded with repeats, dropped after the gather)
            per_rank = max(1, -(-len(selectable) // trainer.world_size))
            padded = np.resize(selectable, per_rank * trainer.world_size) if len(selectable) else selectable
            selectable = padded[trainer.global_rank::trainer.world_size]
        net = channels_last_copy(pl_module.net).eval()  # the layout the CPU's convolutions prefer
        dtypes = (torch.long, torch.long, torch.long, torch.float, torch.float, torch.float)
        columns: list[list[torch.Tensor]] = [[] for _ in dtypes]
        size = self.images.eval_batch_size
        precision = trainer.precision_plugin.forward_context  # the run's autocast (bf16 on a GPU), or none
        for start in range(0, len(selectable), size):
            chunk = selectable[start:start + size]
            images = dataset.images_for(chunk).to(pl_module.device)
            labels = torch.from_numpy(dataset.labels[chunk]).to(pl_module.device)
            with precision():
                logits = self._logits(net, images)
                drop, flipped = self._swap_scores(net, dataset, chunk, logits, labels)
            loss = F.cross_entropy(logits, labels, reduction="none")
            idx = torch.from_numpy(chunk).to(pl_module.device)
            for column, value in zip(columns, (idx, labels, logits.argmax(1), loss, drop, flipped)):
                column.append(value)
        empty = [torch.zeros(0, dtype=dtype, device=pl_module.device) for dtype in dtypes]
        local = [torch.cat(c) if c else e for c, e in zip(columns, empty)]
        if trainer.world_size > 1:
            local = [pl_module.all_gather(c).reshape(-1) for c in local]
        return deduplicate(*(c.cpu().numpy() for c in local))

    @staticmethod
    def _logits(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        return features_and_logits(net, images.contiguous(memory_format=torch.channels_last))[1].float()

    def _swap_scores(self, net: torch.nn.Module, dataset, chunk: np.ndarray, logits: torch.Tensor,
                     labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """How much each sample's swap view lowers its true class's probability (NaN without a
        region; all NaN when only mispredictions are mined) and whether it flips the prediction
        (1.0 or 0.0)."""
        missing = torch.full((len(chunk),), float("nan"), device=logits.device)
        if self.mine_mode == "mispredicted":
            return missing, torch.zeros(len(chunk), device=logits.device)
        if self.partners is None:
            self.partners = partners_by_row(self.images.indices, dataset.labels, self.seed)
        views, swapped = dataset.swapped_images_for(chunk, self.partners, self.swap)
        swap_logits = self._logits(net, views.to(logits.device))
        true = labels[:, None]
        drop = logits.softmax(1).gather(1, true)[:, 0] - swap_logits.softmax(1).gather(1, true)[:, 0]
        has = torch.from_numpy(swapped).to(logits.device)
        return torch.where(has, drop, missing), (has & (swap_logits.argmax(1) != logits.argmax(1))).float()

    # -- applying edits ----------------------------------------------------------------------
    def _publish(self, trainer: L.Trainer) -> None:
        """Fill the changed edits once (costly fills) and write the edit table (which the datasets
        already read) to ``RUN_DIR/imil/edits.json``."""
        shown = (i for record in self.rounds for i in record.selected or [])  # incl. a pending round's
        for row in {*self.table, *self.reviewed, *self.rejected, *shown} - self.identities.keys():
            self.identities[row] = list(self.images.identity(row))
        self.table.precompute(self.images.original)
        if trainer.is_global_zero:
            atomic_write_json(self.run_dir / "imil" / "edits.json",
                              self.table.to_json([r.to_json() for r in self.rounds], self.pending_round,
                                                 self.identities))

    def _log_round(self, trainer: L.Trainer, pl_module: L.LightningModule, record: Round) -> None:
        metrics = {"imil/round": record.round, "imil/n_mispredicted": record.n_mispredicted,
                   "imil/n_selected": record.n_selected, "imil/n_flipped": record.n_flipped or 0,
                   "imil/n_edited": len(record.edited or []),
                   "imil/n_skipped": len(record.skipped or []),
                   "imil/n_propagated": len(record.propagated or []),
                   "imil/generator_updates": record.generator_updates or 0,
                   "imil/budget_used": self.table.clinician_count(),
                   **{f"imil/{key}": value for key, value in
                      edited_shares(len(self.table), self.table.clinician_count(), len(self.images)).items()}}
        for key, value in metrics.items():
            pl_module.log(key, float(value), rank_zero_only=True)
        if not trainer.is_global_zero or not record.edited or not self.log_images:
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                self._wandb_table(logger, record)

    def _wandb_table(self, logger: WandbLogger, record: Round) -> None:
        """The round as a W&B table (offline runs stage its images for ``wandb sync``)."""
        import wandb

        classes = self.images.classes
        rows = [[record.epoch, i, classes[self.table[i].label], classes[self.table[i].prediction],
                 *(wandb.Image(picture) for picture in pictures)]
                for i, pictures in round_pictures(self.images, self.table, record.edited[:32])]
        logger.log_table(f"imil/round_{record.round}",
                         columns=["epoch", "idx", "label", "prediction", "image", "removed",
                                  "edited"], data=rows)

    # -- the queue oracle --------------------------------------------------------------------
    def _queue_round(self, trainer: L.Trainer, pl_module: L.LightningModule, record: Round) -> None:
        """Write the round for review, checkpoint and stop cleanly."""
        if trainer.is_global_zero:
            samples = self._round_samples(pl_module, record.selected)
            write_round(round_dir(self.run_dir, record.round), record.round, record.epoch, samples)
        record.status = "pending review"
        self.rounds.append(record)
        self.pending_round = record.round
        self.waiting_for_review = True
        self._publish(trainer)
        trainer.strategy.barrier()
        trainer.save_checkpoint(self.run_dir / "checkpoints" / "last.ckpt")
        trainer.should_stop = True

    def _round_samples(self, pl_module: L.LightningModule, selected: list[int]) -> list[dict]:
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

    def _apply_review(self, trainer: L.Trainer, number: int) -> None:
        """On resume: the clinician's marks of the pending round become edits."""
        folder = round_dir(self.run_dir, number)
        record = self.rounds[-1]
        if not read_marks(folder, self.images.image_size):
            raise InputError(f"IMIL round {number} has no marks yet: review {folder} first "
                             f"(hkd review {self.run_dir}), then resume")
        taken = self._close_round(folder, record)
        record.edited, record.skipped = [], []
        self._record_edits(record, ((i, t.mask, t.mark.get("comment", ""), t.mark.get("who", ""))
                                    for i, t in taken.items()), "clinician")
        record.status = "reviewed"
        record.unreviewed = [i for i in record.selected if i not in taken]
        record.applied_at = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.pending_round = None
        self._propagate_after(trainer, record)
        if record.propagated:
            self._queue_proposals(trainer, record)

    def _queue_proposals(self, trainer: L.Trainer, record: Round) -> None:
        """Show the applied proposals in the review page, as a round of their own, so the
        clinician can accept, correct or reject them; decisions apply at the next resume."""
        number = len(self.rounds) + 1
        chosen = record.propagated
        if trainer.is_global_zero:
            samples = self._round_samples(trainer.lightning_module, chosen)
            for sample in samples:
                mask = Image.fromarray((self.table[sample["idx"]].mask * 255).astype(np.uint8))
                sample["proposal"] = proposal_overlay(mask.resize(sample["image"].size, Image.NEAREST))
            write_round(round_dir(self.run_dir, number), number, record.epoch, samples,
                        kind=PROPOSALS)
        self.rounds.append(Round(round=number, kind=PROPOSALS, epoch=record.epoch, selected=chosen,
                                 status=AWAITING_CONFIRMATION))

    def _apply_confirmations(self) -> None:
        """Accepted proposals stay (confirmed), rejected ones are undone, corrected ones take the
        clinician's drawing; proposals nobody looked at stay applied."""
        for record in self.rounds:
            if record.kind != PROPOSALS or record.status != AWAITING_CONFIRMATION:
                continue
            folder = round_dir(self.run_dir, record.round)
            if not read_marks(folder, self.images.image_size):
                continue  # nobody has looked at the proposals yet: they stay applied, the round open
            marks = self._close_round(folder, record)
            decisions = {"accepted": [], "rejected": [], "corrected": []}
            for i, taken in marks.items():
                if i not in self.table:
                    continue
                edit, mask, mark = self.table[i], taken.mask, taken.mark
                if mark.get("status") == "accepted":
                    edit.confirmed, edit.who = True, mark.get("who", "")
                    decisions["accepted"].append(i)
                elif mask is None:
                    del self.table[i]
                    self.rejected.add(i)
                    decisions["rejected"].append(i)
                else:
                    edit.mask, edit.source, edit.who = mask, "clinician", mark.get("who", "")
                    edit.reason = "corrected proposal"
                    decisions["corrected"].append(i)
            record.status = "confirmed"
            record.accepted, record.rejected, record.corrected = (decisions[key] for key in
                                                                  ("accepted", "rejected", "corrected"))

    # -- binding edits and marks to images ---------------------------------------------------
    def _locate(self, name: str, digest: str) -> tuple[int | None, str]:
        """The row of the image ``name`` with content ``digest`` now, or (None, what is wrong)."""
        row = self.images.row_of(name)
        if row is None:
            return None, f"{name} is no longer in the data set"
        if self.images.identity(row)[1] != digest:
            return None, f"{name} was replaced (its content differs from the image that was marked)"
        return row, ""

    def _settle(self, problems: list[str], what: str) -> None:
        """Images that are gone or changed: a named error, or (``changed_images="drop"``) their
        edits and marks dropped with a warning naming each."""
        if not problems:
            return
        if self.changed_images == "error":
            more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
            raise InputError(f"IMIL {what} are bound to their images, and {len(problems)} of those images "
                             f"no longer match: {'; '.join(problems[:10])}{more}. Restore the images, or "
                             "resume with imil.changed_images=drop to drop their edits and marks")
        for problem in problems:
            log.warning("IMIL: dropping the edit or mark of %s", problem)

    def _rebind_rows(self) -> None:
        """After loading a checkpoint: every row IMIL has touched is found again by its image (rows
        that moved get their new number); gone or changed images are settled by ``changed_images``."""
        moved, problems = {}, []
        for row, (name, digest) in self.identities.items():
            new, problem = self._locate(name, digest)
            if new is None:
                problems.append(problem)
            else:
                moved[row] = new
        self._settle(problems, "edits and reviewed samples")
        if problems or any(row != new for row, new in moved.items()):
            self._renumber(moved)

    def _renumber(self, moved: dict[int, int]) -> None:
        """Rows in the table, the reviewed and rejected sets and the rounds' lists take their new
        numbers; rows not in ``moved`` (their image is gone) leave them."""
        self.table.renumber(moved)
        self.reviewed = {moved[i] for i in self.reviewed if i in moved}
        self.rejected = {moved[i] for i in self.rejected if i in moved}
        self.identities = {moved[i]: identity for i, identity in self.identities.items() if i in moved}
        for record in self.rounds:
            record.renumber(moved)

    def _taken_rows(self, taken: list[TakenMark]) -> dict[int, TakenMark]:
        """{row now: mark} of a round's marks, each found by its sample's image."""
        rows, problems = {}, []
        for mark in taken:
            if "file" not in mark.sample:  # a round written before samples carried their image
                rows[int(mark.sample["idx"])] = mark
                continue
            row, problem = self._locate(mark.sample["file"], mark.sample["sha256"])
            if row is None:
                problems.append(f"{problem} (sample {mark.sample['id']})")
            else:
                rows[row] = mark
        self._settle(problems, "marks")
        return rows

    def _close_round(self, folder: Path, record: Round) -> dict[int, TakenMark]:
        """Close the round (later saves are refused) and return its marks, by row: those taken
        when it was closed, which a run killed after closing takes again."""
        closure = MarksStore(folder).close()
        coco = folder / MARKS_COCO
        if record.closed_at is None:
            record.closed_at = closure["when"]
            record.coco_sha256 = file_sha256(coco) if coco.is_file() else None
        return self._taken_rows(read_marks(folder, self.images.image_size, closure["taken"]))

    def _refuse_marks_after_closing(self) -> None:
        """A ``marks_coco.json`` written into a round after training closed it would never be used:
        say so instead of dropping it silently."""
        for record in self.rounds:
            coco = round_dir(self.run_dir, record.round) / MARKS_COCO
            if record.closed_at and coco.is_file() and file_sha256(coco) != record.coco_sha256:
                raise InputError(f"{coco} changed after round {record.round} was closed at "
                                 f"{record.closed_at}, when training took its marks: the new marks would "
                                 "never be used. Move them to an open round (or restore the file)")

    # -- propagation -------------------------------------------------------------------------
    def _proposals(self, trainer: L.Trainer, number: int) -> Proposals:
        """This round's proposals. They seed their own random numbers; the training's go on as if
        none had been drawn."""
        device = trainer.lightning_module.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            previous = self.generator if self.propagation.warm_start else None
            proposals = propose_irrelevant_regions(self.propagation, self.images, self.table, self.rejected,
                                                   number, previous)
        self.generator = proposals.generator
        return proposals

    def _propagate(self, trainer: L.Trainer, record: Round) -> list[int]:
        """Rank 0 trains the generator and proposes; every rank applies the same proposals."""
        proposals = self._proposals(trainer, record.round) if trainer.is_global_zero else None
        regions, record.generator_updates = trainer.strategy.broadcast(
            (proposals.regions, proposals.updates) if proposals else None, src=0)
        for i, mask in regions.items():
            self.table[i] = Edit(mask=mask, round=record.round, epoch=record.epoch, source="propagated",
                                 reason="predicted from clinician marks")
        return sorted(regions)
