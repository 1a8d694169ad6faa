"""From ``data.format`` to a list of records and the class names."""

from __future__ import annotations

from omegaconf import DictConfig

from hkd.data.folder import read_folder
from hkd.data.records import DataError, Record
from hkd.data.synthetic import SyntheticSpec, ensure_synthetic


def synthetic_spec(data: DictConfig, seed: int) -> SyntheticSpec:
    s = data.synthetic
    return SyntheticSpec(seed=seed, n_train=s.n_train, n_val=s.n_val, n_test=s.n_test,
                         size=s.size, contrast=s.contrast, shortcut_bias=s.shortcut_bias,
                         include_healthy=data.include_healthy)


def load_records(data: DictConfig, seed: int) -> tuple[list[Record], list[str]]:
    """The records of the configured data set and its ordered class names."""
    if data.format == "synthetic":
        spec = synthetic_spec(data, data.synthetic.seed if data.synthetic.seed is not None else seed)
        records = read_folder(ensure_synthetic(spec, data.cache_dir))
        classes = list(spec.classes)
    elif data.format == "folder":
        records = read_folder(data.root)
        classes = list(data.classes) if data.classes else sorted({r.label for r in records})
    elif data.format == "covid-chestxray":
        from hkd.data.covid_chestxray import read_covid_chestxray

        records, classes = read_covid_chestxray(data)
    else:
        raise DataError(f"unknown data.format '{data.format}'")
    for record in records:
        if record.label not in classes:
            raise DataError(f"{record.source}: label '{record.label}' is not one of the classes "
                            f"{', '.join(classes)} (set data.classes)")
    return records, classes
