"""``hkd test RUN_DIR key=value...``: external validation. The run's best model on another data
set (the usual ``data.*`` keys), with the run's own preprocessing; classes are matched by name
(``--map THEIRS=OURS``), and every metric gets a bootstrap 95 % confidence interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from hkd.atomic import atomic_write_csv, atomic_write_json
from hkd.config import load_config
from hkd.data.cache import build_cache, open_cache
from hkd.data.dataset import ChestXrayDataset
from hkd.data.dicom import image_metadata
from hkd.data.formats import load_records
from hkd.errors import ConfigError
from hkd.evaluation.predictions import prediction_rows, predictions_file
from hkd.evaluation.report import ReportOptions, write_report
from hkd.inference.model import load_model
from hkd.models.prediction import predict_batches
from hkd.reporting.figures import save_confusion_matrix
from hkd.reporting.model_card import write_model_card
from hkd.reporting.statistics import bootstrap_intervals, classification_scores
from hkd.run.build import configured_splits, data_source
from hkd.run.media import fixed_batch, write_cam_overlays

SPLITS = ("all", "train", "val", "test")
N_CAM_IMAGES = 8
MODEL_KEYS = ("data.image_size", "data.channels", "data.mean", "data.std")  # fixed by the model


def external_config(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The run's configuration with the external data's keys on top; the model's input keys stay."""
    bad = [o for o in overrides if o.split("=", 1)[0] in MODEL_KEYS]
    if bad:
        raise ConfigError(f"{', '.join(bad)}: the model fixes its input ({', '.join(MODEL_KEYS)}); "
                          "an external test uses the run's preprocessing")
    wrong = [o for o in overrides if not o.startswith("data.") and not o.startswith("seed=")]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)}: hkd test takes data.* keys (and seed=) only")
    return load_config(str(run_dir / "config.yaml"), ["resume=null", *overrides])


def model_labels(classes: list[str], model_classes: list[str], class_map: dict[str, str]) -> np.ndarray:
    """The model's class index of each data-set class (by name, after ``class_map``)."""
    indices = []
    for name in classes:
        target = class_map.get(name, name)
        if target not in model_classes:
            raise ConfigError(f"class '{name}' of the test data is not a class of the model "
                              f"({', '.join(model_classes)}): map it with --map {name}=CLASS, or leave "
                              f"it out with data.classes=[...]")
        indices.append(model_classes.index(target))
    return np.array(indices)


def evaluation_indices(cfg: DictConfig, records: list, classes: list[str], split: str) -> np.ndarray:
    if split == "all":
        return np.arange(len(records))
    if split not in SPLITS:
        raise ConfigError(f"--split {split} is not one of {', '.join(SPLITS)}")
    return np.flatnonzero(np.array(configured_splits(cfg, records, classes)) == split)


def save_figures(model, dataset: ChestXrayDataset, truth: np.ndarray, predicted: np.ndarray, folder: Path,
                 name: str) -> None:
    """The confusion matrix and the CAM overlays of the first annotated images."""
    confusion = np.zeros((len(model.classes),) * 2, dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    save_confusion_matrix(torch.from_numpy(confusion), model.classes, folder / "confusion_matrix.png", name)
    batch = fixed_batch(dataset, N_CAM_IMAGES)
    write_cam_overlays(model, batch, folder / "cam_overlays.png")


def external_test(run_dir: str | Path, overrides: list[str], name: str | None = None, split: str = "all",
                  class_map: dict[str, str] | None = None, bootstrap: int = 1000,
                  report_options: dict | None = None) -> Path:
    """Evaluate; write ``RUN_DIR/external/NAME/`` (summary.json, test_predictions.csv, the clinical
    report in ``report/`` (``report_options``: ``ReportOptions`` fields), confusion matrix, CAM
    overlays)."""
    run_dir = Path(run_dir)
    model, preprocessing = load_model(run_dir)
    cfg = external_config(run_dir, overrides)
    records, classes = load_records(data_source(cfg), int(cfg.seed))
    to_model = model_labels(classes, model.classes, dict(class_map or {}))
    labels = to_model[np.array([classes.index(r.label) for r in records])]
    indices = evaluation_indices(cfg, records, classes, split)
    cache = open_cache(build_cache(records, preprocessing.image_size, preprocessing.channels,
                                   cfg.data.cache_dir))
    dataset = ChestXrayDataset(cache, indices, labels, np.array([r.has_prior for r in records]),
                               list(preprocessing.mean), list(preprocessing.std))
    out = predict_batches(model, DataLoader(dataset, batch_size=cfg.data.eval_batch_size), progress=True)
    truth = labels[out["idx"]]
    regions = {k: out[k] for k in ("relevance_mass", "pointing_game") if not np.isnan(out[k]).all()}
    name = name or cfg.data.format + ("" if split == "all" else f"-{split}")
    folder = run_dir / "external" / name
    summary = json.loads((run_dir / "summary.json").read_text())
    record = {"name": f"{summary['name']}@{name}", "method": summary["method"], "seed": summary["seed"],
              "fold": summary.get("fold"), "data": cfg.data.format, "classes": model.classes,
              "external": {"name": name, "split": split, "root": cfg.data.root, "images": int(len(truth)),
                           "annotated": int((~np.isnan(out["relevance_mass"])).sum()),
                           "class_map": dict(class_map or {}), "data_classes": classes},
              "test": classification_scores(out["probabilities"], truth),
              "explanations": {k: float(np.nanmean(v)) for k, v in regions.items()},
              "test_ci": bootstrap_intervals(out["probabilities"], truth, regions, bootstrap, seed=cfg.seed),
              "model_run": str(run_dir), "run_dir": str(folder)}
    save_figures(model, dataset, truth, out["probabilities"].argmax(1), folder, name)
    metadata = [image_metadata(records[i]) for i in out["idx"]]
    atomic_write_csv(predictions_file(folder, "test"),
                     prediction_rows(out["idx"], records, truth, model.classes, out, metadata))
    options = ReportOptions(seed=int(cfg.seed), bootstrap=bootstrap, **(report_options or {}))
    write_report(folder, options, f"{summary['name']} on {name}", validation_folder=run_dir)
    atomic_write_json(folder / "summary.json", record)
    write_model_card(run_dir, OmegaConf.load(run_dir / "config.yaml"))
    return folder
