"""A finished IMIL round in the run's logs: its counts as metrics, its edits as a W&B table."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from hkd.data.training_images import TrainingImages
from hkd.imil.edits import EditTable, edited_shares
from hkd.imil.pictures import round_pictures
from hkd.imil.rounds import Round


def log_round(trainer: L.Trainer, pl_module: L.LightningModule, record: Round, table: EditTable,
              images: TrainingImages, log_images: bool) -> None:
    """The round's counts (``imil/*``), and with ``log_images`` its first 32 edits as pictures."""
    metrics = {"imil/round": record.round, "imil/n_mispredicted": record.n_mispredicted,
               "imil/n_selected": record.n_selected, "imil/n_flipped": record.n_flipped or 0,
               "imil/n_edited": len(record.edited or []),
               "imil/n_skipped": len(record.skipped or []),
               "imil/n_propagated": len(record.propagated or []),
               "imil/generator_updates": record.generator_updates or 0,
               "imil/budget_used": table.clinician_count(),
               **{f"imil/{key}": value for key, value in
                  edited_shares(len(table), table.clinician_count(), len(images)).items()}}
    for key, value in metrics.items():
        pl_module.log(key, float(value), rank_zero_only=True)
    if not trainer.is_global_zero or not record.edited or not log_images:
        return
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            wandb_table(logger, record, table, images)


def wandb_table(logger: WandbLogger, record: Round, table: EditTable, images: TrainingImages) -> None:
    """The round as a W&B table (offline runs stage its images for ``wandb sync``)."""
    import wandb

    classes = images.classes
    rows = [[record.epoch, i, classes[table[i].label], classes[table[i].prediction],
             *(wandb.Image(picture) for picture in pictures)]
            for i, pictures in round_pictures(images, table, record.edited[:32])]
    logger.log_table(f"imil/round_{record.round}",
                     columns=["epoch", "idx", "label", "prediction", "image", "removed", "edited"], data=rows)
