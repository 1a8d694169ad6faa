"""Experiment configuration: ``experiments/base.yaml`` <- ``experiments/NAME.yaml`` <- dotlist.

Every key must exist in ``base.yaml`` (struct mode), so a typo is an error naming the key.
An experiment file may start from another experiment with ``extends: OTHER``.
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from collections.abc import Collection
from pathlib import Path

import lightning as L
from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hkd.atomic import atomic_write_text
from hkd.data.datamodule import SAMPLERS
from hkd.data.formats import FORMATS
from hkd.data.masking import FILLS, ROI_MODES
from hkd.data.shortcut import DEFAULT_TEXTS, ShortcutSpec
from hkd.data.transforms import POLICIES
from hkd.errors import ConfigError
from hkd.imil.callback import CHANGED_IMAGES, EDIT_MODES
from hkd.imil.oracles import ORACLES
from hkd.imil.selection import MINE_MODES
from hkd.methods import METHODS
from hkd.methods.hkd import PRIORS, ROI_FRACTION_MODES
from hkd.models.classifier import NONFINITE_POLICIES
from hkd.models.optim import OPTIMIZERS, SCHEDULERS
from hkd.models.prior_generator import generator_path
from hkd.registry import did_you_mean

__all__ = ["ConfigError", "load_config", "save_config", "to_dotlist", "validate"]

PACKAGE_ROOT = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
HEALTHY_FORMATS = ("synthetic", "covid-chestxray")  # data.include_healthy adds a class there
OPEN_SECTIONS = ("model.kwargs", "trainer")  # free-form mappings: any key goes, checked where it is used
RENAMED = {"trainer.nonfinite_loss": "training.nonfinite_loss"}  # old key -> new key (still accepted)
# set by hkd: the run directory, loggers, callbacks, checkpoint IO, progress bar, gradients in test
MANAGED_TRAINER_ARGUMENTS = ("default_root_dir", "logger", "callbacks", "plugins", "enable_progress_bar",
                             "inference_mode")


def migrate_renamed_keys(cfg: DictConfig, source: str) -> DictConfig:
    """Move keys that were renamed to their new place, with a deprecation message."""
    for old, new in RENAMED.items():
        value = OmegaConf.select(cfg, old, default=MISSING)
        if value is MISSING:
            continue
        message = f"{source}: '{old}' is deprecated, use '{new}'"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning(message)
        section, key = old.rsplit(".", 1)
        parent = OmegaConf.select(cfg, section)
        with open_dict(parent):
            parent.pop(key)
        OmegaConf.update(cfg, new, value, force_add=True)
    return cfg


def lock_keys(cfg: DictConfig) -> DictConfig:
    """Struct mode (an unknown key is an error naming it), except in the open sections."""
    OmegaConf.set_struct(cfg, True)
    for key in OPEN_SECTIONS:
        section = OmegaConf.select(cfg, key)
        if section is not None:
            OmegaConf.set_struct(section, False)
    return cfg


def experiments_dir() -> Path:
    """The folder holding ``base.yaml``: ``$HKD_EXPERIMENTS``, ``./experiments``, or the one that
    ships inside the package (``hkd/experiments``, also what the repository's ``experiments``
    links to), so an installed hkd works from any folder."""
    candidates = [os.environ.get("HKD_EXPERIMENTS"), Path.cwd() / "experiments", PACKAGE_ROOT / "experiments"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "base.yaml").is_file():
            return Path(candidate)
    raise ConfigError("cannot find experiments/base.yaml (set HKD_EXPERIMENTS to its folder)")


def resolve_experiment_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return path
    candidate = experiments_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    available = sorted(str(p.relative_to(experiments_dir()).with_suffix(""))
                       for p in experiments_dir().rglob("*.yaml") if p.stem != "base")
    raise ConfigError(f"unknown experiment '{name_or_path}': no file {candidate}; "
                      f"available: {', '.join(available)}")


def experiment_name(path: Path) -> str:
    """A run's default name: the experiment file's name, with its folder inside ``experiments/``
    (``pneuknownet/resnet50_weak.yaml`` -> ``pneuknownet_resnet50_weak``)."""
    try:
        return "_".join(path.resolve().relative_to(experiments_dir().resolve()).with_suffix("").parts)
    except ValueError:  # a file elsewhere
        return path.stem


def _load_yaml(path: Path) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except Exception as error:  # yaml.YAMLError and OSError alike
        raise ConfigError(f"{path}: cannot read YAML: {error}") from error
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return loaded


def _experiment_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """The experiment and the ones it ``extends``, base-most first."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle")
    cfg = _load_yaml(path)
    parent = cfg.pop("extends", None)
    chain = _experiment_chain(resolve_experiment_path(str(parent)), (*seen, path.resolve())) \
        if parent else []
    return [*chain, (path, cfg)]


def _merge(base: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        raise ConfigError(f"{source}: key '{key}' is not valid: {error.msg}") from error


def check_cacheable(cfg: DictConfig) -> None:
    """``hkd.cache_teacher_features`` is only right when the teacher's input never changes between epochs."""
    changing = [key for key, on in (("augment.policy", cfg.augment.policy != "none"),
                                    ("augment.hflip", cfg.augment.hflip),
                                    ("imil.enabled", cfg.imil.enabled)) if on]
    if changing:
        raise ConfigError(f"hkd.cache_teacher_features=true needs a fixed teacher input, but "
                          f"{', '.join(changing)} change(s) it every epoch (set augment.policy=none, "
                          "augment.hflip=false and imil.enabled=false, or compute the teacher every step)")


def load_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Merge base, experiment file(s) and ``key=value`` overrides; resolve interpolations."""
    base_path = experiments_dir() / "base.yaml"
    cfg = _load_yaml(base_path)
    lock_keys(cfg)
    experiment_path = resolve_experiment_path(name_or_path)
    for path, layer in _experiment_chain(experiment_path):
        cfg = _merge(cfg, migrate_renamed_keys(layer, str(path)), str(path))
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override '{override}' must look like key=value")
        cfg = _merge(cfg, migrate_renamed_keys(OmegaConf.from_dotlist([override]), f"override '{override}'"),
                     f"override '{override}'")
    if cfg.name is None:
        cfg.name = experiment_name(experiment_path)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(f"cannot resolve '{getattr(error, 'full_key', '?')}': {error.msg}") \
            from error
    validate(cfg)
    return cfg


WANDB_MODES = ("offline", "online", "disabled")  # logging.wandb
CHECKPOINT_MODES = ("min", "max")  # checkpoint.mode


def enumerated_keys() -> dict[str, Collection[str]]:
    """Every key with a fixed set of values, and the list (or registry) that owns those values."""
    return {"data.format": FORMATS, "method.name": METHODS, "logging.wandb": WANDB_MODES,
            "data.sampler": SAMPLERS, "augment.policy": POLICIES, "optim.name": OPTIMIZERS,
            "optim.scheduler": SCHEDULERS, "checkpoint.mode": CHECKPOINT_MODES,
            "training.nonfinite_loss": NONFINITE_POLICIES, "imil.fill": FILLS, "imil.oracle": ORACLES,
            "imil.changed_images": CHANGED_IMAGES, "counterfactual.fill": FILLS,
            "imil.mine": MINE_MODES, "imil.edit": EDIT_MODES,
            "hkd.roi_fill": FILLS, "hkd.roi_mode": ROI_MODES, "hkd.prior": PRIORS,
            "hkd.roi_fraction_mode": ROI_FRACTION_MODES}


def shortcut_spec(shortcut: DictConfig | None, n_classes: int) -> ShortcutSpec | None:
    """``data.shortcut`` as a checked spec, or None when it is off."""
    if not shortcut or not shortcut.get("kind"):
        return None
    spec = ShortcutSpec(kind=str(shortcut.kind), bias=None if shortcut.bias is None else float(shortcut.bias),
                        val=str(shortcut.val), test=str(shortcut.test), size=float(shortcut.size),
                        intensity=float(shortcut.intensity),
                        texts=tuple(shortcut.texts) if shortcut.texts else DEFAULT_TEXTS)
    spec.check(n_classes)
    return spec


def validate(cfg: DictConfig) -> None:
    """Checks that OmegaConf's types cannot express."""
    for key, allowed in enumerated_keys().items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            names = list(allowed)
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(names)}{did_you_mean(value, names)}")
    if str(cfg.checkpoint.monitor).startswith(("val/cf", "val/roi/")) and not cfg.counterfactual.enabled:
        raise ConfigError(f"checkpoint.monitor={cfg.checkpoint.monitor} needs the counterfactual views: "
                          "add counterfactual.enabled=true")
    if cfg.hkd.prior == "none" and cfg.data.prior_generator and cfg.method.name == "hkd":
        raise ConfigError("hkd.prior=none trains the teacher on raw images (the self-distillation control); "
                          "data.prior_generator would give it regions: leave one of them out")
    if not 0 < cfg.counterfactual.fraction <= 1:
        raise ConfigError(f"counterfactual.fraction={cfg.counterfactual.fraction} must be in (0, 1]: the "
                          "share of the validation images seen through the counterfactual views")
    if not isinstance(cfg.imil.margin, int) or cfg.imil.margin < 0:
        raise ConfigError(f"imil.margin={cfg.imil.margin!r} must be a whole number of pixels >= 0")
    shortcut_spec(cfg.data.shortcut, n_classes=0)
    if cfg.method.name == "hkd" and cfg.hkd.cache_teacher_features:
        check_cacheable(cfg)
    if cfg.data.include_healthy and cfg.data.format not in HEALTHY_FORMATS:
        raise ConfigError(f"data.include_healthy=true applies to {', '.join(HEALTHY_FORMATS)}; "
                          f"data.format={cfg.data.format} takes its classes from the data itself "
                          "(list the ones to keep, healthy included, in data.classes)")
    generator = cfg.data.prior_generator
    if generator and not generator_path(generator).is_file():
        raise ConfigError(f"data.prior_generator={generator}: no saved prior generator there "
                          "(make one with `hkd prior train`; give its run directory or .pt file)")
    check_trainer_arguments(cfg)
    method = METHODS[cfg.method.name]
    if cfg.data.format != "synthetic" and not cfg.data.root:
        raise ConfigError(f"data.root is required for data.format={cfg.data.format}: "
                          f"add data.root=/path/to/data to the command line "
                          f"(make experiment NAME={cfg.name} ARGS=\"data.root=...\")")
    if cfg.model.compile and method.double_backward:
        raise ConfigError(f"model.compile=true cannot train method.name={cfg.method.name}: its loss "
                          "differentiates a gradient (double backward), which torch.compile does not support")
    if cfg.data.folds and not 0 <= cfg.data.fold < cfg.data.folds:
        raise ConfigError(f"data.fold={cfg.data.fold} must be in 0..{cfg.data.folds - 1} "
                          f"(data.folds={cfg.data.folds})")
    if cfg.logging.wandb == "offline" and cfg.logging.log_model:
        raise ConfigError("logging.log_model=true needs logging.wandb=online "
                          "(offline W&B runs cannot upload checkpoints)")
    if (cfg.augment.mixup or cfg.augment.cutmix) and not method.mixes_batches:
        raise ConfigError(f"augment.mixup / augment.cutmix mix images but not their priors: "
                          f"use them with method.name=baseline, not {cfg.method.name}")
    if len(cfg.data.mean) != cfg.data.channels or len(cfg.data.std) != cfg.data.channels:
        raise ConfigError(f"data.mean and data.std need one value per channel "
                          f"(data.channels={cfg.data.channels})")


def check_trainer_arguments(cfg: DictConfig) -> None:
    """Every ``trainer.*`` key must be an argument of ``lightning.Trainer`` that hkd does not set."""
    accepted = [name for name in inspect.signature(L.Trainer.__init__).parameters
                if name not in ("self", *MANAGED_TRAINER_ARGUMENTS)]
    for key in cfg.trainer:
        if key in MANAGED_TRAINER_ARGUMENTS:
            raise ConfigError(f"trainer.{key} is set by hkd (the run directory, loggers, callbacks, "
                              "checkpoint IO, progress bar, gradients for test-time CAMs): use "
                              "callbacks.*, logging.* or output_dir")
        if key not in accepted:
            raise ConfigError(f"trainer.{key} is not an argument of lightning.Trainer"
                              f"{did_you_mean(key, accepted)}")


def save_config(cfg: DictConfig, path: str | Path) -> None:
    atomic_write_text(path, OmegaConf.to_yaml(cfg, resolve=True))


def to_dotlist(cfg: DictConfig) -> dict[str, object]:
    """Flat ``{"a.b": value}`` view, for logging hyper-parameters."""
    flat: dict[str, object] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat
