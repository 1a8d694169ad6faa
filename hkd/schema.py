"""The type and the bounds of every configuration key.

``experiments/base.yaml`` holds each key's default and its comment; this schema holds its type
(OmegaConf converts or refuses a value when it is merged, naming the file or override and the
key) and, where a key has one, its range (checked after every layer, so the message names the
layer that brought the value). A key in ``base.yaml`` without a field here, or a field without its
key, is an error at load. Keys with a fixed set of names are plain strings here: the registries
that implement them own the names (``hkd.config.enumerated_keys``). ``model.kwargs`` and
``trainer`` stay open (any timm / ``lightning.Trainer`` argument); the trainer keys listed here are
typed all the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional, Union

from omegaconf import MISSING, DictConfig, OmegaConf

from hkd.errors import ConfigError

# Optional / Union, not `X | None`: OmegaConf reads the annotations at run time on Python 3.10
# ruff: noqa: UP007, UP045


@dataclass(frozen=True)
class Bounds:
    """A closed or half-open range of a number: ``low <= x`` (``low < x`` when ``open_low``)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


POSITIVE = Bounds(low=1)  # a count: 1, 2, ...
NON_NEGATIVE = Bounds(low=0)
ABOVE_ZERO = Bounds(low=0, open_low=True)  # a rate or a scale
PROBABILITY = Bounds(low=0, high=1)
SHARE = Bounds(low=0, high=1, open_low=True)  # a share that cannot be empty


def key(bounds: Bounds | None = None) -> Any:
    """A schema field: no default (``base.yaml`` has it), and its range if it has one."""
    return field(default=MISSING, metadata={"bounds": bounds} if bounds else {})


def section(schema: type) -> Any:
    return field(default_factory=schema)


@dataclass
class Method:
    name: str = key()
    weight: float = key(NON_NEGATIVE)


@dataclass
class Synthetic:
    seed: Optional[int] = key(NON_NEGATIVE)
    n_train: int = key(POSITIVE)
    n_val: int = key(POSITIVE)
    n_test: int = key(POSITIVE)
    size: int = key(POSITIVE)
    contrast: float = key(NON_NEGATIVE)
    shortcut_bias: Optional[float] = key(PROBABILITY)
    val_shortcut: str = key()


@dataclass
class Shortcut:
    kind: Optional[str] = key()
    bias: Optional[float] = key(PROBABILITY)
    val: str = key()
    test: str = key()
    size: float = key(SHARE)
    intensity: float = key(PROBABILITY)
    texts: Optional[list[str]] = key()


@dataclass
class Data:
    format: str = key()
    root: Optional[str] = key()
    cache_dir: str = key()
    classes: Optional[list[str]] = key()
    include_healthy: bool = key()
    image_size: int = key(POSITIVE)
    channels: int = key(POSITIVE)
    mean: list[float] = key()
    std: list[float] = key()
    fill_mean: float = key(PROBABILITY)
    prior_soft_edge: float = key(NON_NEGATIVE)
    batch_size: int = key(POSITIVE)
    eval_batch_size: int = key(POSITIVE)
    num_workers: int = key(NON_NEGATIVE)
    persistent_workers: bool = key()
    pin_memory: bool = key()
    sampler: str = key()
    val_fraction: float = key(PROBABILITY)
    test_fraction: float = key(PROBABILITY)
    train_size: Optional[int] = key(POSITIVE)
    folds: int = key(NON_NEGATIVE)
    fold: int = key(NON_NEGATIVE)
    allow_split_change: bool = key()
    relevant_categories: Optional[list[str]] = key()
    prior_generator: Optional[str] = key()
    finding_map: Optional[dict[str, str]] = key()
    synthetic: Synthetic = section(Synthetic)
    shortcut: Shortcut = section(Shortcut)


@dataclass
class Augment:
    policy: str = key()
    hflip: bool = key()
    degrees: float = key(Bounds(low=0, high=180))
    translate: float = key(PROBABILITY)
    scale: float = key(Bounds(low=0, high=1))
    mixup: float = key(NON_NEGATIVE)
    cutmix: float = key(NON_NEGATIVE)


@dataclass
class Model:
    backbone: str = key()
    pretrained: Union[bool, str] = key()
    output_stride: Optional[int] = key(POSITIVE)
    drop_rate: float = key(PROBABILITY)
    kwargs: dict[str, Any] = key()
    class_weights: bool = key()
    channels_last: bool = key()
    compile: bool = key()


@dataclass
class Optim:
    name: str = key()
    lr: float = key(ABOVE_ZERO)
    weight_decay: float = key(NON_NEGATIVE)
    scheduler: str = key()
    warmup_epochs: int = key(NON_NEGATIVE)
    decay_norm_and_bias: bool = key()


@dataclass
class HKD:
    teacher_epochs: Optional[int] = key(POSITIVE)
    teacher_checkpoint: Optional[str] = key()
    alpha: float = key(PROBABILITY)
    kd_epochs: Optional[int] = key(NON_NEGATIVE)
    roi_mode: str = key()
    roi_fill: str = key()
    roi_fraction: float = key(SHARE)
    roi_fraction_mode: str = key()
    prior: str = key()
    teacher_precision: str = key()
    cache_teacher_features: bool = key()


@dataclass
class PriorGenerator:
    epochs: int = key(POSITIVE)
    features: list[int] = key()
    lr: float = key(ABOVE_ZERO)
    threshold: float = key(PROBABILITY)


@dataclass
class IMIL:
    enabled: bool = key()
    oracle: str = key()
    budget: float = key(PROBABILITY)
    start_epoch: int = key(NON_NEGATIVE)
    every_n_epochs: int = key(POSITIVE)
    rounds: Optional[int] = key(POSITIVE)
    fill: str = key()
    margin: int = key(NON_NEGATIVE)
    propagate: bool = key()
    propagate_confidence: float = key(PROBABILITY)
    propagate_max_area: float = key(PROBABILITY)
    propagate_updates: int = key(POSITIVE)
    propagate_batch_size: int = key(POSITIVE)
    propagate_stop_recall: Optional[float] = key(PROBABILITY)
    propagate_features: list[int] = key()
    propagate_lr: float = key(ABOVE_ZERO)
    propagate_scale: float = key(SHARE)
    propagate_warm_start: bool = key()
    mine: str = key()
    edit: str = key()
    changed_images: str = key()


@dataclass
class Counterfactual:
    enabled: bool = key()
    margin: int = key(NON_NEGATIVE)
    fill: str = key()
    fraction: float = key(SHARE)


@dataclass
class Calibration:
    temperature: bool = key()


@dataclass
class Report:
    by: list[str] = key()
    min_subgroup: int = key(NON_NEGATIVE)
    bootstrap: int = key(NON_NEGATIVE)


@dataclass
class Checkpoint:
    monitor: str = key()
    mode: str = key()


@dataclass
class Explain:
    n_images: int = key(NON_NEGATIVE)


@dataclass
class Logging:
    loggers: list[str] = key()
    wandb: str = key()
    project: str = key()
    mlflow_uri: Optional[str] = key()
    entity: Optional[str] = key()
    images: bool = key()
    log_model: bool = key()
    progress_bar: bool = key()
    epoch_lines: bool = key()


@dataclass
class Training:
    nonfinite_loss: str = key()
    nonfinite_check_every: int = key(POSITIVE)


@dataclass
class Callbacks:
    early_stopping: Optional[dict[str, Any]] = key()
    lr_monitor: bool = key()
    swa: Optional[dict[str, Any]] = key()
    extra: list[Any] = key()


@dataclass
class Trainer:  # open: any other lightning.Trainer argument may be added
    max_epochs: int = key(POSITIVE)
    accelerator: str = key()
    devices: Union[int, str] = key()
    num_nodes: int = key(POSITIVE)
    strategy: str = key()
    precision: str = key()
    log_every_n_steps: int = key(POSITIVE)
    gradient_clip_val: Optional[float] = key(NON_NEGATIVE)
    deterministic: Union[bool, str] = key()
    fast_dev_run: Union[bool, int] = key()
    limit_train_batches: Union[int, float] = key(NON_NEGATIVE)
    limit_val_batches: Union[int, float] = key(NON_NEGATIVE)
    limit_test_batches: Union[int, float] = key(NON_NEGATIVE)


@dataclass
class Config:
    name: Optional[str] = key()
    seed: int = key(NON_NEGATIVE)
    output_dir: str = key()
    resume: Optional[str] = key()
    method: Method = section(Method)
    data: Data = section(Data)
    augment: Augment = section(Augment)
    model: Model = section(Model)
    optim: Optim = section(Optim)
    hkd: HKD = section(HKD)
    prior_generator: PriorGenerator = section(PriorGenerator)
    imil: IMIL = section(IMIL)
    counterfactual: Counterfactual = section(Counterfactual)
    calibration: Calibration = section(Calibration)
    report: Report = section(Report)
    checkpoint: Checkpoint = section(Checkpoint)
    explain: Explain = section(Explain)
    logging: Logging = section(Logging)
    training: Training = section(Training)
    callbacks: Callbacks = section(Callbacks)
    trainer: Trainer = section(Trainer)


def check_complete(cfg: DictConfig, source: str) -> None:
    """``base.yaml`` merged on the schema left no key without a value: the schema has no key the
    file lacks (a key the file has and the schema lacks already failed the merge)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{source}: the schema (hkd/schema.py) has keys this file lacks: "
                          f"{', '.join(missing)}")


def ranged_keys(schema: type = Config, prefix: str = "") -> dict[str, Bounds]:
    """``{"data.batch_size": POSITIVE, ...}``: every key that has a range."""
    found: dict[str, Bounds] = {}
    for item in fields(schema):
        if item.default_factory is not dataclasses.MISSING and is_dataclass(item.default_factory):
            found |= ranged_keys(item.default_factory, f"{prefix}{item.name}.")
        elif item.metadata.get("bounds"):
            found[f"{prefix}{item.name}"] = item.metadata["bounds"]
    return found


RANGED = ranged_keys()
TYPED_TRAINER_KEYS = frozenset(item.name for item in fields(Trainer))  # the rest: checked against Lightning


def check_ranges(cfg: DictConfig, source: str) -> None:
    """Every number in its range; values still to be interpolated are checked once resolved."""
    for dotted, bounds in RANGED.items():
        parent_key, _, leaf = dotted.rpartition(".")
        parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        if parent is None or OmegaConf.is_interpolation(parent, leaf):
            continue
        value = parent[leaf]
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not bounds.admits(value):
            raise ConfigError(f"{source}: {dotted}={value!r} must be {bounds.describe()}")
