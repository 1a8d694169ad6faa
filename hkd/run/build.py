"""The composition root: the one place below the CLI where the configuration becomes objects.

Networks, the training method and the classifier module are built here from the run's
configuration and handed to constructors that take plain values and built parts; nothing in the
library layers below (data, models, methods, imil) reads the configuration. Tests, benchmarks and
checkpoint loading build their modules here too (``build_module``)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch import nn

from hkd.config import shortcut_spec
from hkd.data.affine_range import AffineRange
from hkd.data.batch_swap import BatchSwap
from hkd.data.counterfactual import CounterfactualSettings
from hkd.data.datamodule import ChestXrayDataModule, LoaderSettings, SampleSettings
from hkd.data.formats import DataSource, load_records
from hkd.data.formats.source import SyntheticSpec
from hkd.data.image_record import Record
from hkd.data.splits import dataset_splits
from hkd.data.transforms import build_augmentation, build_batch_mix
from hkd.evaluation.report import ReportOptions
from hkd.imil.callback import IMILCallback
from hkd.imil.edits import EditTable
from hkd.imil.propagation import Propagation
from hkd.methods import METHODS, Method
from hkd.models.backbone import BackboneSpec, allow_double_backward, build_backbone
from hkd.models.classifier import ClassifierModule
from hkd.models.optim import Optimization
from hkd.run.method_runs import method_run


def backbone_spec(cfg: DictConfig, pretrained: bool | str | None = None) -> BackboneSpec:
    """The network the ``model`` keys describe (``pretrained`` replaced when given)."""
    model = cfg.model
    return BackboneSpec(backbone=model.backbone,
                        pretrained=model.pretrained if pretrained is None else pretrained,
                        output_stride=model.output_stride, drop_rate=float(model.drop_rate),
                        kwargs=OmegaConf.to_container(model.kwargs) if model.kwargs else {})


def build_network(cfg: DictConfig, num_classes: int, pretrained: bool | str | None = None) -> nn.Module:
    """The configured timm network for ``num_classes`` classes at the configured input."""
    return build_backbone(backbone_spec(cfg, pretrained), num_classes, int(cfg.data.channels),
                          int(cfg.data.image_size))


def method_arguments(method_class: type[Method], section: DictConfig) -> dict:
    """The ``method.*`` keys (but ``name``) that the method's constructor names."""
    parameters = inspect.signature(method_class.__init__).parameters
    return {key: value for key, value in OmegaConf.to_container(section).items()
            if key != "name" and key in parameters}


def build_method(cfg: DictConfig, num_classes: int) -> Method:
    """The configured training method (``method.name``)."""
    build = method_run(cfg).build
    if build is not None:
        return build(cfg, num_classes)
    method_class = METHODS[cfg.method.name]
    return method_class(**method_arguments(method_class, cfg.method))


def optimization(cfg: DictConfig) -> Optimization:
    return Optimization(**OmegaConf.to_container(cfg.optim))


def build_module(cfg: DictConfig, classes: list[str], method: Method | None = None,
                 class_weights: list[float] | None = None, teacher: bool = False) -> ClassifierModule:
    """The classifier module of a run: the configured method (or ``method``; with ``teacher``, HKD's
    stage-1 teacher: plain cross-entropy on ROI images) and a new network, in that order (the
    method's placeholder networks draw no random numbers from the network's initialisation)."""
    if teacher:
        method = Method(input_key="roi")
    method = method if method is not None else build_method(cfg, len(classes))
    net = build_network(cfg, len(classes))
    if method.double_backward:
        allow_double_backward(net)
    mix = swap = None
    if method.input_key == "image":  # batch mixing is for models on raw images, not HKD's teacher
        mix = build_batch_mix(float(cfg.augment.mixup), float(cfg.augment.cutmix), len(classes))
        swap = batch_swap(cfg)
    return ClassifierModule(net, method, classes, optimization=optimization(cfg),
                            class_weights=class_weights, channels_last=bool(cfg.model.channels_last),
                            compile=bool(cfg.model.compile), batch_mix=mix, batch_swap=swap,
                            nonfinite_loss=cfg.training.nonfinite_loss,
                            nonfinite_check_every=int(cfg.training.nonfinite_check_every),
                            teacher=teacher, run_config=OmegaConf.to_container(cfg))


def batch_swap(cfg: DictConfig) -> BatchSwap | None:
    """Counterfactual training (``augment.counterfactual``): the validation swap view
    (``counterfactual.fill``) on a share ``p`` of each training batch; None when ``p`` is 0."""
    section = cfg.augment.counterfactual
    if not section.p:
        return None
    settings = dataclasses.replace(swap_settings(cfg), margin=int(section.margin))
    return BatchSwap(float(section.p), section.partner, settings, tuple(map(float, cfg.data.mean)),
                     tuple(map(float, cfg.data.std)))


def edit_table(cfg: DictConfig) -> EditTable:
    """An empty IMIL edit table with the configured fill (``imil.fill``, ``imil.margin``)."""
    return EditTable(fill=cfg.imil.fill, margin=int(cfg.imil.margin), fill_mean=float(cfg.data.fill_mean),
                     scope=cfg.imil.edit_scope)


def build_imil_callback(cfg: DictConfig, run_dir: str | Path) -> IMILCallback:
    """IMIL's callback from the ``imil.*`` keys (propagation's threshold is ``prior_generator``'s)."""
    section, generator = cfg.imil, cfg.prior_generator
    stop_recall = section.propagate_stop_recall
    propagation = Propagation(seed=int(cfg.seed), channels=int(cfg.data.channels),
                              features=tuple(section.propagate_features),
                              lr=float(section.propagate_lr),
                              threshold=float(generator.threshold),
                              max_area=float(section.propagate_max_area),
                              confidence=float(section.propagate_confidence),
                              updates=int(section.propagate_updates),
                              batch_size=int(section.propagate_batch_size),
                              stop_recall=None if stop_recall is None else float(stop_recall),
                              scale=float(section.propagate_scale),
                              warm_start=bool(section.propagate_warm_start)) if section.propagate else None
    return IMILCallback(run_dir, edit_table(cfg), oracle=section.oracle, budget=float(section.budget),
                        start_epoch=int(section.start_epoch), every_n_epochs=int(section.every_n_epochs),
                        rounds=section.rounds, propagation=propagation, log_images=bool(cfg.logging.images),
                        changed_images=section.changed_images, mine=section.mine,
                        swap=swap_settings(cfg), seed=int(cfg.seed), edit=section.edit)


def synthetic_spec(cfg: DictConfig) -> SyntheticSpec:
    """The generator's settings from ``data.synthetic`` (its own seed, or the run's)."""
    s = cfg.data.synthetic
    return SyntheticSpec(seed=int(s.seed if s.seed is not None else cfg.seed), n_train=s.n_train,
                         n_val=s.n_val, n_test=s.n_test, size=s.size, contrast=s.contrast,
                         shortcut_bias=s.shortcut_bias, include_healthy=bool(cfg.data.include_healthy),
                         val_shortcut=s.val_shortcut)


def data_source(cfg: DictConfig) -> DataSource:
    """Where the configured data set lies and how its labels become classes."""
    data = cfg.data
    return DataSource(format=data.format, root=data.root, cache_dir=str(data.cache_dir),
                      classes=tuple(data.classes) if data.classes else None,
                      include_healthy=bool(data.include_healthy),
                      relevant_categories=tuple(data.relevant_categories or ()) or None,
                      finding_map=dict(data.finding_map) if data.finding_map else {},
                      val_fraction=float(data.val_fraction),
                      synthetic=synthetic_spec(cfg) if data.format == "synthetic" else None)


def configured_splits(cfg: DictConfig, records: list[Record], classes: list[str]) -> list[str]:
    """Every record's split as the ``data`` keys ask for it (K-fold or a fixed/seeded split)."""
    data = cfg.data
    return dataset_splits(records, classes, int(cfg.seed), val_fraction=float(data.val_fraction),
                          test_fraction=float(data.test_fraction), folds=int(data.folds), fold=int(data.fold),
                          train_size=data.train_size)


def augmentation(cfg: DictConfig):
    """The configured training-time transform (``augment.*``; None: nothing)."""
    augment = cfg.augment
    affine = AffineRange(degrees=float(augment.degrees), translate=float(augment.translate),
                         scale=float(augment.scale))
    return build_augmentation(augment.policy, affine, hflip=bool(augment.hflip),
                              channels=int(cfg.data.channels))


def build_datamodule(cfg: DictConfig, roi_mode: str | None = None,
                     roi_splits: tuple[str, ...] | None = None) -> ChestXrayDataModule:
    """The configured data set (read, and generated where it is synthetic), its splits and loaders;
    ``roi_mode`` (e.g. ``cfg.hkd.roi_mode``) makes the samples of ``roi_splits`` (default: every
    split) carry ROI images."""
    data = cfg.data
    records, classes = load_records(data_source(cfg), int(cfg.seed))
    splits = configured_splits(cfg, records, classes)
    samples = SampleSettings(mean=tuple(map(float, data.mean)), std=tuple(map(float, data.std)),
                             roi_mode=roi_mode, roi_fill=cfg.hkd.roi_fill, fill_mean=float(data.fill_mean),
                             prior_soft_edge=float(data.prior_soft_edge))
    loaders = LoaderSettings(batch_size=int(data.batch_size), eval_batch_size=int(data.eval_batch_size),
                             num_workers=int(data.num_workers),
                             persistent_workers=bool(data.persistent_workers),
                             pin_memory=bool(data.pin_memory), sampler=data.sampler)
    channels = int(data.channels)
    return ChestXrayDataModule(records, classes, splits, image_size=int(data.image_size), channels=channels,
                               cache_dir=data.cache_dir, samples=samples, loaders=loaders,
                               augmentation=augmentation(cfg),
                               shortcut=shortcut_spec(data.get("shortcut"), len(classes)),
                               seed=int(cfg.seed), roi_fraction=data_roi_fraction(cfg),
                               counterfactual=counterfactual_settings(cfg), roi_splits=roi_splits)


def counterfactual_settings(cfg: DictConfig) -> CounterfactualSettings | None:
    """The validation split's counterfactual views (``counterfactual.*``, on a ``fraction`` of its
    images), or None when off."""
    if not cfg.counterfactual.enabled:
        return None
    return dataclasses.replace(swap_settings(cfg), fraction=float(cfg.counterfactual.fraction))


def data_roi_fraction(cfg: DictConfig) -> float:
    """The share of annotated training images whose annotations the data keeps: none with
    ``hkd.prior=none`` (the teacher sees raw images), all of them in
    ``hkd.roi_fraction_mode=authors`` (only the teacher sees the fraction; the student distils from
    every image's ROI), ``hkd.roi_fraction`` otherwise."""
    if not method_run(cfg).uses_annotations(cfg):
        return 0.0
    return 1.0 if cfg.hkd.roi_fraction_mode == "authors" else float(cfg.hkd.roi_fraction)


def report_options(cfg: DictConfig) -> ReportOptions:
    """The clinical report's settings (``report.*``) for this run."""
    return ReportOptions(by=tuple(cfg.report.by), bootstrap=int(cfg.report.bootstrap),
                         min_subgroup=int(cfg.report.min_subgroup), seed=int(cfg.seed))


def swap_settings(cfg: DictConfig) -> CounterfactualSettings:
    """How a swap view is made (``counterfactual.margin``, ``counterfactual.fill``)."""
    return CounterfactualSettings(margin=int(cfg.counterfactual.margin), fill=cfg.counterfactual.fill,
                                  fill_mean=float(cfg.data.fill_mean))
