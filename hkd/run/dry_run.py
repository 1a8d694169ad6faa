"""``hkd config NAME --splits``: the data set read and split as a run would, without training or
decoding an image: images and patients per split and class, and how many carry a region."""

from __future__ import annotations

from collections import Counter

from omegaconf import DictConfig

from hkd.data.formats import load_records
from hkd.run.build import configured_splits, data_source

SPLITS = ("train", "val", "test")


def split_table(cfg: DictConfig) -> str:
    """A markdown table: one row per split, a column per class, then patients and images with a
    region (an annotation or a mask: what HKD's prior, IMIL's oracle and the audits use)."""
    records, classes = load_records(data_source(cfg), int(cfg.seed))
    splits = configured_splits(cfg, records, classes)
    lines = [f"| split | {' | '.join(classes)} | images | patients | with a region |",
             "|---" * (len(classes) + 4) + "|"]
    for split in SPLITS:
        chosen = [record for record, where in zip(records, splits) if where == split]
        if not chosen:
            continue
        per_class = Counter(record.label for record in chosen)
        patients = len({record.patient_id for record in chosen})
        with_region = sum(record.has_prior for record in chosen)
        lines.append(f"| {split} | {' | '.join(str(per_class[name]) for name in classes)} | {len(chosen)} | "
                     f"{patients} | {with_region} |")
    unused = sum(where not in SPLITS for where in splits)
    note = f"\n{unused} images left out (data.train_size)" if unused else ""
    return f"\n# data.format={cfg.data.format}: {len(records)} images\n" + "\n".join(lines) + note
