"""IMIL (Rao et al. 2024) as a Lightning callback: mine misprediction outliers during training,
ask an oracle for their irrelevant regions, black those out and train on the edited samples.

The edits are data: an override table ``{idx: mask}`` on the training dataset, applied on read,
saved in this callback's checkpoint state and in ``RUN_DIR/imil/edits.json``. Under DDP every
rank mines its shard, the results are gathered and de-duplicated, and every rank applies the same
selection (a pure function); the train loader is rebuilt each epoch so workers see the edits.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from hkd.data.records import DataError
from hkd.imil.masks import decode_mask, encode_mask
from hkd.imil.oracles import AnnotationOracle
from hkd.imil.queue import read_marks, round_dir, write_round
from hkd.imil.selection import deduplicate, round_limit, select_outliers, total_budget
from hkd.io import atomic_write_json
from hkd.models.explain import explain_batch

AWAITING_CONFIRMATION = "applied, awaiting confirmation"  # a proposals round nobody reviewed yet


class IMILCallback(Callback):
    def __init__(self, imil: DictConfig, run_dir: str | Path) -> None:
        self.cfg = imil
        self.run_dir = Path(run_dir)
        self.edits: dict[int, dict] = {}  # idx -> {"mask": bool array, "round", "epoch", "source", ...}
        self.reviewed: set[int] = set()  # mined and shown to the oracle (edited or skipped)
        self.rejected: set[int] = set()  # propagated proposals a clinician rejected: never again
        self.rounds: list[dict] = []
        self.pending_round: int | None = None
        self.waiting_for_review = False

    @property
    def state_key(self) -> str:
        return "IMILCallback"

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"edits": {int(i): {**e, "mask": encode_mask(e["mask"])} for i, e in self.edits.items()},
                "reviewed": sorted(self.reviewed), "rejected": sorted(self.rejected),
                "rounds": self.rounds,
                "pending_round": self.pending_round}

    def load_state_dict(self, state: dict) -> None:
        self.edits = {int(i): {**e, "mask": decode_mask(e["mask"])} for i, e in state["edits"].items()}
        self.reviewed = set(state["reviewed"])
        self.rejected = set(state.get("rejected", []))
        self.rounds = list(state["rounds"])
        self.pending_round = state.get("pending_round")

    def clinician_edits(self) -> int:
        return sum(1 for e in self.edits.values() if e["source"] != "propagated")

    # -- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        workers = datamodule.data.num_workers
        if (datamodule.data.persistent_workers and workers > 0
                and not trainer.reload_dataloaders_every_n_epochs):
            raise ValueError("IMIL edits would be lost: persistent DataLoader workers keep their "
                             "copy of the dataset; set reload_dataloaders_every_n_epochs=1 or "
                             "data.persistent_workers=false")
        if self.pending_round is not None:
            self._apply_confirmations(trainer)
            self._apply_review(trainer, self.pending_round)
        self._publish(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        due = epoch >= self.cfg.start_epoch and (epoch - self.cfg.start_epoch) % self.cfg.every_n_epochs == 0
        last_epoch = trainer.max_epochs is not None and epoch >= trainer.max_epochs - 1
        mining_rounds = sum(1 for r in self.rounds if r.get("kind") != "proposals")
        if not due or last_epoch or (self.cfg.rounds and mining_rounds >= self.cfg.rounds):
            return
        datamodule = trainer.datamodule
        n_train = len(datamodule.datasets["train"])
        total = total_budget(self.cfg.budget, n_train)
        limit = round_limit(total, self.clinician_edits(), self.cfg.rounds)
        if limit <= 0 and not self.cfg.propagate:
            return
        idx, labels, predictions, losses = self.mine(trainer, pl_module)
        chosen = select_outliers(idx, labels, predictions, losses, self.reviewed, limit)
        number = len(self.rounds) + 1
        record = {"round": number, "epoch": epoch, "n_train": n_train,
                  "n_mispredicted": int((predictions != labels).sum()), "n_selected": len(chosen),
                  "selected": chosen, "labels": [int(labels[idx == i][0]) for i in chosen],
                  "predictions": [int(predictions[idx == i][0]) for i in chosen]}
        if self.cfg.oracle == "queue" and chosen:
            self._queue_round(trainer, pl_module, number, record)
            return
        edited, skipped = [], []
        if self.cfg.oracle == "annotations":
            oracle = AnnotationOracle(datamodule)
            for i, label, prediction in zip(chosen, record["labels"], record["predictions"]):
                mask, reason = oracle.irrelevant_regions(i)
                self.reviewed.add(i)
                if mask is None:
                    skipped.append(i)
                    continue
                self.edits[i] = {"mask": mask, "round": number, "epoch": epoch, "source": "oracle",
                                 "reason": reason, "label": label, "prediction": prediction}
                edited.append(i)
        record.update(edited=edited, skipped=skipped)
        if self.cfg.propagate and self.clinician_edits():
            record["propagated"] = self._propagate(trainer, number, epoch)
        self.rounds.append(record)
        self._publish(trainer)
        self._log_round(trainer, pl_module, record)

    # -- mining ------------------------------------------------------------------------------
    @torch.no_grad()
    def mine(self, trainer: L.Trainer, pl_module: L.LightningModule):
        """(idx, label, prediction, loss) of every training sample, identical on all ranks."""
        dataset = trainer.datamodule.datasets["train_eval"]
        sampler = None
        if trainer.world_size > 1:
            sampler = DistributedSampler(dataset, num_replicas=trainer.world_size,
                                         rank=trainer.global_rank, shuffle=False, drop_last=False)
        loader = DataLoader(dataset, batch_size=trainer.datamodule.data.eval_batch_size,
                            sampler=sampler, shuffle=False, num_workers=0)
        was_training = pl_module.training
        pl_module.eval()
        columns: list[list[torch.Tensor]] = [[], [], [], []]
        for batch in loader:
            logits = pl_module(batch["image"].to(pl_module.device)).float()
            labels = batch["label"].to(pl_module.device)
            loss = F.cross_entropy(logits, labels, reduction="none")
            for column, value in zip(columns, (batch["idx"].to(pl_module.device), labels,
                                               logits.argmax(1), loss)):
                column.append(value)
        pl_module.train(was_training)
        local = [torch.cat(c) for c in columns]
        if trainer.world_size > 1:
            local = [pl_module.all_gather(c).reshape(-1) for c in local]
        idx, labels, predictions, losses = (c.cpu().numpy() for c in local)
        return deduplicate(idx, labels, predictions, losses)

    # -- applying edits ----------------------------------------------------------------------
    def _publish(self, trainer: L.Trainer) -> None:
        """Hand the edit table to the datasets and write it to ``RUN_DIR/imil/edits.json``."""
        trainer.datamodule.set_overrides({i: e["mask"] for i, e in self.edits.items()})
        if trainer.is_global_zero:
            atomic_write_json(self.run_dir / "imil" / "edits.json", {
                "version": 1, "n_edited": len(self.edits),
                "n_clinician": self.clinician_edits(), "rounds": self.rounds,
                "pending_round": self.pending_round,
                "edits": [{"idx": i, **{k: v for k, v in e.items() if k != "mask"},
                           "mask": encode_mask(e["mask"])} for i, e in sorted(self.edits.items())]})

    def _log_round(self, trainer: L.Trainer, pl_module: L.LightningModule, record: dict) -> None:
        metrics = {"imil/round": record["round"], "imil/n_mispredicted": record["n_mispredicted"],
                   "imil/n_selected": record["n_selected"],
                   "imil/n_edited": len(record.get("edited", [])),
                   "imil/n_skipped": len(record.get("skipped", [])),
                   "imil/n_propagated": len(record.get("propagated", [])),
                   "imil/budget_used": self.clinician_edits()}
        for key, value in metrics.items():
            pl_module.log(key, float(value), rank_zero_only=True)
        if not trainer.is_global_zero or not record.get("edited"):
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and trainer.datamodule.cfg.logging.images:
                self._wandb_table(logger, trainer, record)

    def _wandb_table(self, logger: WandbLogger, trainer: L.Trainer, record: dict) -> None:
        """The round as a W&B table (offline runs stage its images for ``wandb sync``)."""
        import wandb

        datamodule = trainer.datamodule
        rows = [[record["epoch"], i, datamodule.classes[self.edits[i]["label"]],
                 datamodule.classes[self.edits[i]["prediction"]],
                 *(wandb.Image(picture) for picture in pictures)]
                for i, pictures in round_pictures(datamodule.datasets["train_eval"], record["edited"][:32])]
        logger.log_table(f"imil/round_{record['round']}",
                         columns=["epoch", "idx", "label", "prediction", "image", "removed",
                                  "edited"], data=rows)

    # -- the queue oracle --------------------------------------------------------------------
    def _queue_round(self, trainer: L.Trainer, pl_module: L.LightningModule, number: int,
                     record: dict) -> None:
        """Write the round for review, checkpoint and stop cleanly."""
        datamodule = trainer.datamodule
        if trainer.is_global_zero:
            samples = self._round_samples(datamodule, pl_module, record)
            write_round(round_dir(self.run_dir, number), number, record["epoch"], samples)
        self.rounds.append({**record, "status": "pending review"})
        self.pending_round = number
        self.waiting_for_review = True
        self._publish(trainer)
        trainer.strategy.barrier()
        trainer.save_checkpoint(self.run_dir / "checkpoints" / "last.ckpt")
        trainer.should_stop = True

    def _round_samples(self, datamodule, pl_module, record: dict) -> list[dict]:
        dataset = datamodule.datasets["train_eval"]
        position = {int(i): p for p, i in enumerate(dataset.indices)}
        samples = [dataset[position[i]] for i in record["selected"]]
        batch = {"image": torch.stack([s["image"] for s in samples]),
                 "label": torch.tensor([s["label"] for s in samples])}
        probabilities, cams = explain_batch(pl_module, batch, of_prediction=True)
        pl_module.train()
        out = []
        for sample, probability, cam in zip(samples, probabilities, cams):
            record_ = datamodule.records[sample["idx"]]
            with Image.open(record_.path) as original:
                image = original.convert("RGB")
            heat = (cam.numpy() * 255).astype(np.uint8)
            cam_image = Image.fromarray(heat).resize(image.size, Image.BILINEAR)
            out.append({"idx": sample["idx"], "label": datamodule.classes[sample["label"]],
                        "prediction": datamodule.classes[int(probability.argmax())],
                        "confidence": float(probability.max()), "image": image,
                        "cam": _heatmap(cam_image)})
        return out

    def _apply_review(self, trainer: L.Trainer, number: int) -> None:
        """On resume: the clinician's marks of the pending round become edits."""
        folder = round_dir(self.run_dir, number)
        marks = read_marks(folder, trainer.datamodule.data.image_size)
        record = self.rounds[-1]
        if not marks:
            raise DataError(f"IMIL round {number} has no marks yet: review {folder} first "
                            f"(hkd review {self.run_dir}), then resume")
        edited, skipped = [], []
        for i, (mask, mark) in marks.items():
            self.reviewed.add(i)
            if mask is None:
                skipped.append(i)
                continue
            self.edits[i] = {"mask": mask, "round": number, "epoch": record["epoch"],
                             "source": "clinician", "reason": mark.get("comment", ""),
                             "who": mark.get("who", ""), "label": _selected_value(record, "labels", i),
                             "prediction": _selected_value(record, "predictions", i)}
            edited.append(i)
        record.update(status="reviewed", edited=edited, skipped=skipped,
                      unreviewed=[i for i in record["selected"] if i not in marks],
                      applied_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.pending_round = None
        if self.cfg.propagate and self.clinician_edits():
            record["propagated"] = self._propagate(trainer, number, record["epoch"])
            if record["propagated"]:
                self._queue_proposals(trainer, record)

    def _queue_proposals(self, trainer: L.Trainer, record: dict) -> None:
        """Show the applied proposals in the review page, as a round of their own, so the
        clinician can accept, correct or reject them; decisions apply at the next resume."""
        number = len(self.rounds) + 1
        chosen = record["propagated"]
        datamodule = trainer.datamodule
        if trainer.is_global_zero:
            proposal_record = {"selected": chosen, "labels": [], "predictions": []}
            samples = self._round_samples(datamodule, trainer.lightning_module, proposal_record)
            for sample in samples:
                mask = Image.fromarray((self.edits[sample["idx"]]["mask"] * 255).astype(np.uint8))
                sample["proposal"] = _proposal_overlay(mask.resize(sample["image"].size, Image.NEAREST))
            write_round(round_dir(self.run_dir, number), number, record["epoch"], samples,
                        kind="proposals")
        self.rounds.append({"round": number, "kind": "proposals", "epoch": record["epoch"],
                            "selected": chosen, "status": AWAITING_CONFIRMATION})

    def _apply_confirmations(self, trainer: L.Trainer) -> None:
        """Accepted proposals stay (confirmed), rejected ones are undone, corrected ones take the
        clinician's drawing; proposals nobody looked at stay applied."""
        for record in self.rounds:
            if record.get("kind") != "proposals" or record["status"] != AWAITING_CONFIRMATION:
                continue
            marks = read_marks(round_dir(self.run_dir, record["round"]), trainer.datamodule.data.image_size)
            decisions = {"accepted": [], "rejected": [], "corrected": []}
            for i, (mask, mark) in marks.items():
                if i not in self.edits:
                    continue
                if mark.get("status") == "accepted":
                    self.edits[i].update(confirmed=True, who=mark.get("who", ""))
                    decisions["accepted"].append(i)
                elif mask is None:
                    del self.edits[i]
                    self.rejected.add(i)
                    decisions["rejected"].append(i)
                else:
                    self.edits[i].update(mask=mask, source="clinician", who=mark.get("who", ""),
                                         reason="corrected proposal")
                    decisions["corrected"].append(i)
            if marks:
                record.update(status="confirmed", **decisions)

    # -- propagation -------------------------------------------------------------------------
    def _propagate(self, trainer: L.Trainer, number: int, epoch: int) -> list[int]:
        from hkd.imil.propagation import propose_irrelevant_regions

        proposals = propose_irrelevant_regions(trainer, self, number)
        for i, mask in proposals.items():
            self.edits[i] = {"mask": mask, "round": number, "epoch": epoch, "source": "propagated",
                             "reason": "predicted from clinician marks", "label": -1, "prediction": -1}
        return sorted(proposals)


def _selected_value(record: dict, column: str, idx: int) -> int:
    """``record[column]`` of a selected sample (``labels`` or ``predictions``); -1 if not selected."""
    return record[column][record["selected"].index(idx)] if idx in record["selected"] else -1


def round_pictures(dataset, indices: list[int]):
    """Per edited sample: (idx, (original, removed region, edited image as training sees it)),
    from the edit table the dataset holds."""
    for i in indices:
        original = np.asarray(dataset.cache.images[i], dtype=np.float32)[0]
        edited = dataset.raw(i)[0][0].numpy()  # with the configured fill and margin
        yield i, (original, dataset.overrides[i].astype(np.float32), edited)


def _proposal_overlay(mask: Image.Image) -> Image.Image:
    """A translucent blue layer over the proposed region."""
    alpha = (np.asarray(mask) > 127).astype(np.uint8) * 140
    rgba = np.zeros((*alpha.shape, 4), np.uint8)
    rgba[..., 2], rgba[..., 1], rgba[..., 3] = 255, 120, alpha
    return Image.fromarray(rgba, mode="RGBA")


def _heatmap(gray: Image.Image) -> Image.Image:
    """A colour heatmap (blue -> red) with alpha, for overlaying in the review page."""
    value = np.asarray(gray, dtype=np.float32) / 255
    rgba = np.stack([value, 1 - np.abs(value - 0.5) * 2, 1 - value, 0.15 + 0.6 * value], -1)
    return Image.fromarray((rgba * 255).astype(np.uint8), mode="RGBA")


def load_edits(run_dir: str | Path) -> dict[int, np.ndarray]:
    """The edit table saved in ``RUN_DIR/imil/edits.json``."""
    data = json.loads((Path(run_dir) / "imil" / "edits.json").read_text())
    return {int(e["idx"]): decode_mask(e["mask"]) for e in data["edits"]}
