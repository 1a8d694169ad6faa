"""Every configuration key, declared once: its type, default, range, allowed names and what it
does. OmegaConf converts or refuses a value by its type when it is merged (naming the file or
override and the key); ranges are checked after every layer; names against the list or registry
that owns them (``hkd.config.choices``: the registries implement the names). ``experiments/base.yaml``
and the docs' key table are generated from here (``python -m hkd.config.reference``; a test checks
both are current). ``model.kwargs`` and ``trainer`` stay open (any timm / ``lightning.Trainer``
argument); the trainer keys listed here are typed all the same. A new key is one line here and,
where a part takes it, one in ``hkd.run.build``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Collection, Iterator
from dataclasses import Field, dataclass, field, fields, is_dataclass
from typing import Any, Optional, Union

from omegaconf import DictConfig, OmegaConf

from hkd.config.choices import (
    CHANGED_IMAGES,
    CHECKPOINT_MODES,
    EDIT_MODES,
    EDIT_SCOPES,
    FILLS,
    FORMATS,
    METHODS,
    MINE_MODES,
    NONFINITE_POLICIES,
    OPTIMIZERS,
    ORACLES,
    POLICIES,
    PRIORS,
    ROI_FRACTION_MODES,
    ROI_MODES,
    SAMPLERS,
    SCHEDULERS,
    SWAP_PARTNERS,
    TEACHER_PRECISIONS,
    WANDB_MODES,
)
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


def key(default: Any, doc: str, bounds: Bounds | None = None, *,
        choices: Collection[str] | None = None) -> Any:
    """A configuration key: its default, what it does (``base.yaml``'s comment and the docs' key
    table), its range if it has one and, for a key with a fixed set of names, the list or registry
    that owns them."""
    metadata = {"doc": doc, "bounds": bounds, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def section(schema: type, doc: str = "") -> Any:
    return field(default_factory=schema, metadata={"doc": doc})


@dataclass
class Method:
    name: str = key("baseline", "baseline | hkd | rrr | gradmask | actdiff | cam_align | jtt",
                    choices=METHODS)
    weight: float = key(1.0, "weight of the method's extra loss term (rrr, gradmask, actdiff, cam_align)",
                        NON_NEGATIVE)


@dataclass
class Synthetic:
    seed: Optional[int] = key(None, "seed of the generated images; null = the run's seed", NON_NEGATIVE)
    n_train: int = key(600, "training images (balanced over classes)", POSITIVE)
    n_val: int = key(150, "validation images", POSITIVE)
    n_test: int = key(300, "test images (the shortcut is random here)", POSITIVE)
    size: int = key(96, "generated resolution (pixels)", POSITIVE)
    contrast: float = key(0.1, "intensity of the findings; lower = harder (calibrated, see README)",
                          NON_NEGATIVE)
    shortcut_bias: Optional[float] = key(0.95, "P(shortcut tag names the true class) in train/val; null = "
                                         "random", PROBABILITY)
    val_shortcut: str = key("biased", "biased (val as train) | random: a shortcut-free validation split for "
                            "selection and tuning")


@dataclass
class Shortcut:
    kind: Optional[str] = key(None, "null = off | text (a burned-in label whose text names a class) | "
                              "corner_tag (its corner does)")
    bias: Optional[float] = key(0.95, "P(the marker names the true class) in train (and val=biased); null = "
                                "random", PROBABILITY)
    val: str = key("biased", "validation split: biased (as train) | random | absent (shortcut-free model "
                   "selection)")
    test: str = key("random", "test split: random (a marker naming any class) | absent")
    size: float = key(0.12, "marker height as a share of the image side", SHARE)
    intensity: float = key(1.0, "marker brightness in [0, 1] (burned-in labels are white)", PROBABILITY)
    texts: Optional[list[str]] = key(None, "kind=text: one label per class, in class order; null = "
                                     "PORTABLE, SUPINE, ERECT, AP, PA, ...")


@dataclass
class Data:
    format: str = key("synthetic", "synthetic (embedded) | folder | covid-chestxray | kermany | siim-covid "
                      "| rsna-pneumonia | vindr-cxr", choices=FORMATS)
    root: Optional[str] = key(None, "data folder (not needed for synthetic)")
    cache_dir: str = key(".cache/hkd", "generated data and decoded-image cache")
    classes: Optional[list[str]] = key(None, "class names in order; null = from the data")
    include_healthy: bool = key(False, "add a fifth \"healthy\" class (synthetic, covid-chestxray)")
    image_size: int = key(64, "images are resized to this square size (pixels)", POSITIVE)
    channels: int = key(1, "1 = grayscale input, 3 = RGB (e.g. for ImageNet weights)", POSITIVE)
    mean: list[float] = key([0.5], "per-channel normalisation mean (ImageNet: [0.485, 0.456, 0.406])")
    std: list[float] = key([0.25], "per-channel normalisation std (ImageNet: [0.229, 0.224, 0.225])")
    fill_mean: float = key(0.5, "raw-pixel value used by the `mean` blackout fill", PROBABILITY)
    prior_soft_edge: float = key(0.0, "Gaussian sigma (pixels) softening the prior's edge; 0 = hard mask",
                                 NON_NEGATIVE)
    batch_size: int = key(32, "training batch size per device", POSITIVE)
    eval_batch_size: int = key(128, "batch size for validation, test and mining passes", POSITIVE)
    num_workers: int = key(0, "DataLoader worker processes", NON_NEGATIVE)
    persistent_workers: bool = key(False, "keep workers alive between epochs (IMIL reloads loaders then)")
    pin_memory: bool = key(False, "page-locked host memory for faster GPU copies")
    sampler: str = key("random", "random | balanced (class-balanced sampling with replacement)",
                       choices=SAMPLERS)
    val_fraction: float = key(0.15, "share of patients for validation when there is no split column",
                              PROBABILITY)
    test_fraction: float = key(0.2, "share of patients for test when there is no split column (0: train / "
                               "valid only)", PROBABILITY)
    train_size: Optional[int] = key(None, "keep only about this many training images (whole patients, each "
                                    "class its share, drawn from the seed; val and test unchanged): "
                                    "learning curves; null = all", POSITIVE)
    folds: int = key(0, "K for patient-grouped K-fold cross-validation; 0 = off", NON_NEGATIVE)
    fold: int = key(0, "which fold is the test split when folds > 0", NON_NEGATIVE)
    allow_split_change: bool = key(False, "resume= on a data set whose images moved between splits: refused "
                                   "unless true (test images would leak into training; what changed is "
                                   "printed either way)")
    relevant_categories: Optional[list[str]] = key(None, "COCO categories that are relevant regions; null = "
                                                   "all but `irrelevant` (synthetic: null = [finding]; "
                                                   "[lung] = lung outlines as the prior)")
    prior_generator: Optional[str] = key(None, "a run of `hkd prior train` (or its .pt): predicts the "
                                         "region of every image without one (HKD's prior, relevance-mass "
                                         "regions); beyond both papers")
    finding_map: Optional[dict[str, str]] = key(None, "covid-chestxray, vindr-cxr, kermany: {finding "
                                                "substring: class}; null = default table")
    synthetic: Synthetic = section(Synthetic)
    shortcut: Shortcut = section(Shortcut, "planted-shortcut stress test on any data set (beyond both "
                                 "papers; README)")


@dataclass
class CounterfactualTraining:
    p: float = key(0.0, "share of the training images per batch whose pixels outside the relevant region "
                   "come from another image of the batch, the label kept (beyond both papers; README); 0 = "
                   "off", PROBABILITY)
    partner: str = key("other_class", "where that outside comes from: other_class (an image of another "
                       "class) | any (any other image)", choices=SWAP_PARTNERS)
    margin: int = key(2, "pixels the relevant region grows by before its outside is replaced", NON_NEGATIVE)


@dataclass
class Augment:
    policy: str = key("basic", "none | basic (affine) | strong | randaugment | trivialaugment | pneuknownet "
                      "(their albumentations \"strong\") | pneuknownet_weak (their \"weak\": the affine step "
                      "only)", choices=POLICIES)
    hflip: bool = key(False, "random horizontal flips (anatomy is not left-right symmetric)")
    degrees: float = key(10, "affine rotation range (degrees)", Bounds(low=0, high=180))
    translate: float = key(0.08, "affine shift range (fraction of the image)", PROBABILITY)
    scale: float = key(0.1, "affine zoom range (1 +- scale)", Bounds(low=0, high=1))
    mixup: float = key(0.0, "MixUp Beta(alpha) on training batches; 0 = off (baseline only)", NON_NEGATIVE)
    cutmix: float = key(0.0, "CutMix Beta(alpha) on training batches; 0 = off (baseline only)", NON_NEGATIVE)
    counterfactual: CounterfactualTraining = section(CounterfactualTraining, "counterfactual training from "
                                                     "the prior (the validation swap view, in training)")


@dataclass
class Model:
    backbone: str = key("test_resnet", "any timm model name (e.g. resnet50, convnext_small)")
    pretrained: Union[bool, str] = key(False, "false | true (timm hub; needs internet) | path to a local "
                                       "weights file")
    output_stride: Optional[int] = key(8, "CNN output stride (finer maps for CAMs) where the model has one; "
                                       "null = its default", POSITIVE)
    drop_rate: float = key(0.0, "dropout before the classifier", PROBABILITY)
    kwargs: dict[str, Any] = key({}, "more timm.create_model arguments, e.g. {drop_path_rate: 0.1} or a "
                                 "small {depths: [1, 1]}")
    class_weights: bool = key(False, "weight the cross-entropy by inverse class frequency")
    channels_last: bool = key(False, "channels-last memory format (faster on GPUs with AMP)")
    compile: bool = key(False, "torch.compile the backbone")


@dataclass
class Optim:
    name: str = key("adamw", "adamw | adam | sgd", choices=OPTIMIZERS)
    lr: float = key(0.002, "learning rate", ABOVE_ZERO)
    weight_decay: float = key(0.0001, "decoupled weight decay (adamw) / L2 (adam, sgd)", NON_NEGATIVE)
    scheduler: str = key("cosine", "cosine (per epoch) | cosine_per_step (one cosine over all steps) | "
                         "pneuknownet_cosine (their code) | none", choices=SCHEDULERS)
    warmup_epochs: int = key(0, "linear warm-up epochs before the cosine decay", NON_NEGATIVE)
    decay_norm_and_bias: bool = key(False, "true: weight decay on norm weights and biases too (timm's way "
                                    "is false)")


@dataclass
class HKD:
    teacher_epochs: Optional[int] = key(None, "teacher (stage 1) epochs; null = trainer.max_epochs", POSITIVE)
    teacher_checkpoint: Optional[str] = key(None, "reuse a trained teacher checkpoint instead of stage 1")
    alpha: float = key(0.5, "a_0: initial weight of the feature-distillation MSE", PROBABILITY)
    kd_epochs: Optional[int] = key(None, "epochs over which a_e decays to 0; null = 2/3 of max_epochs",
                                   NON_NEGATIVE)
    roi_mode: str = key("blackout", "teacher input: blackout (outside prior filled) | soft (image x prior)",
                        choices=ROI_MODES)
    roi_fill: str = key("zero", "blackout fill: zero | mean | blur | noise | inpaint", choices=FILLS)
    roi_fraction: float = key(1.0, "share of annotated training images whose annotations are used", SHARE)
    roi_fraction_mode: str = key("raw_rest", "raw_rest: the teacher also trains on the other images, "
                                 "unmasked | authors: PneuKnowNet's train_kd.py: teacher on the sampled "
                                 "images for floor(epochs / roi_fraction), the student distils from every "
                                 "image's ROI | subset: the teacher as authors (epochs rounded), the other "
                                 "images lose their annotations for the student too",
                                 choices=ROI_FRACTION_MODES)
    prior: str = key("annotations", "annotations | predicted (prior generator fills unannotated images) | "
                     "none (the teacher sees raw images: the papers' self-distillation control, \"noroi\")",
                     choices=PRIORS)
    teacher_precision: str = key("fp32", "fp32: the teacher pass outside autocast (PneuKnowNet's code) | "
                                 "autocast: in the student's trainer.precision (bf16/16-mixed: faster on a "
                                 "GPU, `make bench-gpu`)", choices=TEACHER_PRECISIONS)
    cache_teacher_features: bool = key(False, "teacher features computed once after stage 1 (needs "
                                       "augment.policy=none, no hflip, no IMIL: a fixed teacher input); "
                                       "false = a teacher pass every step")


@dataclass
class JTT:
    epochs: int = key(1, "epochs of the first, plain cross-entropy model whose training errors form the "
                      "error set (Liu et al. 2021's T)", POSITIVE)
    upweight: float = key(20.0, "weight of each error-set image's cross-entropy in the final model (their "
                          "lambda_up)", Bounds(low=1))


@dataclass
class PriorGenerator:
    epochs: int = key(15, "training epochs of the MONAI BasicUNet prior generator", POSITIVE)
    features: list[int] = key([8, 16, 32, 64, 128, 8], "BasicUNet channel widths (5 levels + output)")
    lr: float = key(0.002, "AdamW learning rate", ABOVE_ZERO)
    threshold: float = key(0.5, "probability above which a pixel is in the predicted region", PROBABILITY)


@dataclass
class IMIL:
    enabled: bool = key(False, "interactive misprediction-outlier masking during training")
    oracle: str = key("annotations", "annotations (simulated clinician) | queue (real review) | sham (the "
                      "same samples, random regions of the same number and area: the control) | none",
                      choices=ORACLES)
    budget: float = key(0.04, "max share of the training set edited over the whole run", PROBABILITY)
    start_epoch: int = key(2, "first epoch (0-based) after which outliers are mined", NON_NEGATIVE)
    every_n_epochs: int = key(2, "mining period in epochs", POSITIVE)
    rounds: Optional[int] = key(None, "max number of mining rounds; null = until the budget is spent",
                                POSITIVE)
    fill: str = key("zero", "fill of edited pixels: zero | mean | blur | noise | inpaint (see README)",
                    choices=FILLS)
    margin: int = key(0, "pixels (at data.image_size) each removed region grows by before the fill",
                      NON_NEGATIVE)
    propagate: bool = key(False, "predict irrelevant regions of other images from the marks so far")
    propagate_confidence: float = key(0.8, "min mean probability inside a proposed region to black it out",
                                      PROBABILITY)
    propagate_max_area: float = key(0.3, "max share of the image a proposal may remove", PROBABILITY)
    propagate_updates: int = key(200, "max optimiser updates of the generator per round", POSITIVE)
    propagate_batch_size: int = key(8, "marked images per update (a round's marks are few: small batches "
                                    "learn them sooner)", POSITIVE)
    propagate_stop_recall: Optional[float] = key(0.99, "stop earlier (checked every 10 updates) once the "
                                                 "generator, shown the marked images, would propose each "
                                                 "one and cover this share of the marked pixels; null: "
                                                 "always propagate_updates", PROBABILITY)
    propagate_features: list[int] = key([8, 8, 16, 32, 64, 8], "the generator's BasicUNet widths (5 levels "
                                        "+ output)")
    propagate_lr: float = key(0.003, "its AdamW learning rate", ABOVE_ZERO)
    propagate_scale: float = key(1.0, "the generator learns and proposes at this share of data.image_size "
                                 "(0.5: 4x fewer pixels; never below 32 px)", SHARE)
    propagate_warm_start: bool = key(False, "each round continues the previous round's generator (a resume "
                                     "starts afresh)")
    mine: str = key("mispredicted", "which samples a round offers: mispredicted (the paper) | flips (the "
                    "counterfactual swap changes their prediction; beyond the paper) | both (half each)",
                    choices=MINE_MODES)
    edit: str = key("replace", "replace: the edited image replaces its original (the paper) | add: it joins "
                    "the original in the training set (beyond the paper)", choices=EDIT_MODES)
    edit_scope: str = key("sample", "sample: each region is removed from the image it was marked on (the "
                          "paper) | all: every region marked or proposed so far is removed, at the same "
                          "place, from every training image (beyond the paper; for shortcuts whose position "
                          "names the class)", choices=EDIT_SCOPES)
    changed_images: str = key("error", "resume= when an edited or marked image is gone or its file changed: "
                              "error (naming it) | drop (its edit and marks, with a warning naming it)",
                              choices=CHANGED_IMAGES)


@dataclass
class Counterfactual:
    enabled: bool = key(False, "log val/cf/balanced_accuracy, val/cf/flip_rate, val/roi/balanced_accuracy, "
                        "val/cf_score")
    margin: int = key(2, "pixels the relevant region grows by before its outside is replaced", NON_NEGATIVE)
    fill: str = key("zero", "what replaces the outside in the roi view (and the partner's region in the "
                    "swap)", choices=FILLS)
    fraction: float = key(1.0, "share of the validation images (per class, from the seed) seen through the "
                          "views: a CPU validation epoch costs about 1 + 2 x fraction plain ones", SHARE)


@dataclass
class Calibration:
    temperature: bool = key(False, "fit temperature scaling on the validation split after training; "
                            "predict, test and export apply it (calibration.json beside the checkpoint)")


@dataclass
class Report:
    by: list[str] = key([], "metadata columns to break the test results down by, e.g. [sex, view]")
    min_subgroup: int = key(30, "subgroups with fewer test images are flagged as small", NON_NEGATIVE)
    bootstrap: int = key(1000, "resamples behind every 95 % CI (patients, where patient ids exist)",
                         NON_NEGATIVE)


@dataclass
class Checkpoint:
    monitor: str = key("val/balanced_accuracy", "metric that selects the best checkpoint (val/cf_score "
                       "needs counterfactual.enabled)")
    mode: str = key("max", "max or min for the monitored metric", choices=CHECKPOINT_MODES)


@dataclass
class Explain:
    n_images: int = key(8, "fixed test images whose CAM overlays are saved and logged", NON_NEGATIVE)


@dataclass
class Logging:
    loggers: list[str] = key(['wandb'], "dashboards besides the CSV log (always written): any of wandb, "
                             "tensorboard, mlflow")
    wandb: str = key("offline", "offline (sync later) | online | disabled", choices=WANDB_MODES)
    project: str = key("hkd", "W&B project (and MLflow experiment)")
    mlflow_uri: Optional[str] = key(None, "MLflow tracking URI; null = sqlite:///OUTPUT_DIR/mlflow.db (one "
                                    "store for all runs)")
    entity: Optional[str] = key(None, "W&B team or user; null = your default")
    images: bool = key(True, "log image media (turn off for data that must not leave the machine)")
    log_model: bool = key(False, "upload checkpoints to W&B (online only)")
    progress_bar: bool = key(True, "show progress bars")
    epoch_lines: bool = key(False, "print one line per epoch to stdout (hkd cv turns it on)")


@dataclass
class Training:
    nonfinite_loss: str = key("stop", "on a NaN/inf loss: stop (report step + sample ids) | skip the step",
                              choices=NONFINITE_POLICIES)
    nonfinite_check_every: int = key(50, "steps between the host's looks at the non-finite count (bad steps "
                                     "are skipped on the device at once; 1 = look every step, a sync per "
                                     "step)", POSITIVE)


@dataclass
class Callbacks:
    early_stopping: Optional[dict[str, Any]] = key(None, "{monitor: val/loss, patience: 5, mode: min}: stop "
                                                   "when the metric stalls")
    lr_monitor: bool = key(False, "log the learning rate every epoch (lr-*)")
    swa: Optional[dict[str, Any]] = key(None, "{swa_lrs: 0.0001}: stochastic weight averaging (Lightning's "
                                        "arguments)")
    extra: list[Any] = key([], "your own: [{class_path: my_package.MyCallback, init_args: {...}}]")


@dataclass
class Trainer:  # open: any other lightning.Trainer argument may be added
    max_epochs: int = key(10, "training epochs (the student's, for hkd)", POSITIVE)
    accelerator: str = key("auto", "cpu | gpu | auto")
    devices: Union[int, str] = key(1, "devices per node (GPUs or CPU processes)")
    num_nodes: int = key(1, "machines", POSITIVE)
    strategy: str = key("auto", "auto | ddp | ddp_spawn | ...")
    precision: str = key("32-true", "32-true | 16-mixed | bf16-mixed")
    log_every_n_steps: int = key(10, "how often training metrics are logged", POSITIVE)
    gradient_clip_val: Optional[float] = key(None, "clip gradients to this norm; null = off", NON_NEGATIVE)
    deterministic: Union[bool, str] = key(False, "deterministic algorithms (slower)")
    fast_dev_run: Union[bool, int] = key(False, "one batch of each loop, for smoke tests")
    limit_train_batches: Union[int, float] = key(1.0, "share (or number) of training batches per epoch",
                                                 NON_NEGATIVE)
    limit_val_batches: Union[int, float] = key(1.0, "share (or number) of validation batches", NON_NEGATIVE)
    limit_test_batches: Union[int, float] = key(1.0, "share (or number) of test batches", NON_NEGATIVE)


@dataclass
class Config:
    name: Optional[str] = key(None, "experiment name; defaults to the experiment file's name")
    seed: int = key(42, "one seed for data generation, splits, sampling and initialisation", NON_NEGATIVE)
    output_dir: str = key("runs", "runs are written to OUTPUT_DIR/NAME/RUN_ID/")
    resume: Optional[str] = key(None, "a run directory to continue from its last checkpoint")
    method: Method = section(Method)
    data: Data = section(Data)
    augment: Augment = section(Augment)
    model: Model = section(Model)
    optim: Optim = section(Optim)
    hkd: HKD = section(HKD)
    jtt: JTT = section(JTT, "Just Train Twice (method.name=jtt): the annotation-free row to beat")
    prior_generator: PriorGenerator = section(PriorGenerator)
    imil: IMIL = section(IMIL)
    counterfactual: Counterfactual = section(Counterfactual, "views of the validation images from their "
                                             "relevant region (beyond both papers; README)")
    calibration: Calibration = section(Calibration)
    report: Report = section(Report, "the clinical evaluation report of every run and hkd test "
                             "(RUN_DIR/report/report.md)")
    checkpoint: Checkpoint = section(Checkpoint)
    explain: Explain = section(Explain)
    logging: Logging = section(Logging)
    training: Training = section(Training)
    callbacks: Callbacks = section(Callbacks)
    trainer: Trainer = section(Trainer, "handed to lightning.Trainer as is: any of its arguments may be "
                               "added, e.g. trainer.accumulate_grad_batches=4 or "
                               "trainer.sync_batchnorm=true")


def is_section(item: Field) -> bool:
    return item.default_factory is not dataclasses.MISSING and is_dataclass(item.default_factory)


def declared(schema: type = Config, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """(dotted key, its field) of every key and section, in declaration order (sections first)."""
    for item in fields(schema):
        yield f"{prefix}{item.name}", item
        if is_section(item):
            yield from declared(item.default_factory, f"{prefix}{item.name}.")


def default_of(item: Field) -> Any:
    return item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default


RANGED = {dotted: item.metadata["bounds"] for dotted, item in declared() if item.metadata.get("bounds")}
ENUMERATED = {dotted: item.metadata["choices"] for dotted, item in declared() if item.metadata.get("choices")}
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
