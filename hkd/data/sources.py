"""From ``data.format`` to a list of records and the class names."""

from __future__ import annotations

import importlib

from omegaconf import DictConfig

from hkd.data.folder import read_folder
from hkd.data.records import DataError, Record
from hkd.data.synthetic import SyntheticSpec, ensure_synthetic

# data.format -> (module, loader function) of the public chest X-ray data sets
PUBLIC_LOADERS = {
    "covid-chestxray": ("hkd.data.covid_chestxray", "read_covid_chestxray"),
    "siim-covid": ("hkd.data.siim_covid", "read_siim_covid"),
    "rsna-pneumonia": ("hkd.data.rsna_pneumonia", "read_rsna_pneumonia"),
    "vindr-cxr": ("hkd.data.vindr_cxr", "read_vindr_cxr"),
}


def synthetic_spec(data: DictConfig, seed: int) -> SyntheticSpec:
    s = data.synthetic
    return SyntheticSpec(seed=seed, n_train=s.n_train, n_val=s.n_val, n_test=s.n_test,
                         size=s.size, contrast=s.contrast, shortcut_bias=s.shortcut_bias,
                         include_healthy=data.include_healthy)


def load_records(data: DictConfig, seed: int) -> tuple[list[Record], list[str]]:
    """The records of the configured data set and its ordered class names."""
    if data.format == "synthetic":
        spec = synthetic_spec(data, data.synthetic.seed if data.synthetic.seed is not None else seed)
        categories = list(data.relevant_categories or ["finding"])
        records = read_folder(ensure_synthetic(spec, data.cache_dir), categories)
        classes = list(spec.classes)
    elif data.format == "folder":
        categories = list(data.relevant_categories) if data.relevant_categories else None
        records = read_folder(data.root, categories)
        classes = list(data.classes) if data.classes else sorted({r.label for r in records})
    elif data.format in PUBLIC_LOADERS:
        module, function = PUBLIC_LOADERS[data.format]
        records, classes = getattr(importlib.import_module(module), function)(data)
    else:
        raise DataError(f"unknown data.format '{data.format}'")
    for record in records:
        if record.label not in classes:
            raise DataError(f"{record.source}: label '{record.label}' is not one of the classes "
                            f"{', '.join(classes)} (set data.classes)")
    return records, classes
