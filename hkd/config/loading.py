"""A run's configuration: the schema's keys (``hkd.config.schema``) <- ``experiments/base.yaml``
<- ``experiments/NAME.yaml`` <- dotlist, checked as each layer is merged and once resolved.

Every key must exist in the schema (struct mode), so a typo is an error naming the key.
An experiment file may start from another experiment with ``extends: OTHER``.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import MISSING, DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hkd.atomic import atomic_write_text
from hkd.config.choices import LOGGERS, METHODS
from hkd.config.experiment_files import experiment_name, experiments_dir, resolve_experiment_path
from hkd.config.registry import did_you_mean, not_one_of
from hkd.config.schema import ENUMERATED, TYPED_TRAINER_KEYS, Config, check_ranges
from hkd.errors import ConfigError
from hkd.models.generator_file import generator_path

if TYPE_CHECKING:
    from hkd.data.shortcut import ShortcutSpec

__all__ = ["ConfigError", "experiments_dir", "load_config", "save_config", "to_dotlist", "validate"]

log = logging.getLogger(__name__)
HEALTHY_FORMATS = ("synthetic", "covid-chestxray")  # data.include_healthy adds a class there
# free-form mappings: any key goes, checked where it is used (a null one too, once it is set)
OPEN_SECTIONS = ("model.kwargs", "trainer", "data.finding_map", "callbacks.early_stopping", "callbacks.swa")
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
        parent, _, leaf = key.rpartition(".")
        section = (OmegaConf.select(cfg, parent) if parent else cfg)._get_node(leaf)
        if isinstance(section, DictConfig):  # also while null: the flag stays when it is set
            OmegaConf.set_struct(section, False)
    return cfg


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


def merge_layer(base: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    """``layer`` over ``base``: a key the schema does not know, or a value of the wrong type, is an
    error naming ``source`` (the file or the override) and the key."""
    try:
        return OmegaConf.merge(base, layer)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None) or "?"
        reason = str(error.msg).splitlines()[0]  # OmegaConf appends the key and the node's types
        raise ConfigError(f"{source}: key '{key}' is not valid: {reason}") from error


def check_cacheable(cfg: DictConfig) -> None:
    """``hkd.cache_teacher_features`` is only right when the teacher's input never changes between epochs."""
    changing = [key for key, on in (("augment.policy", cfg.augment.policy != "none"),
                                    ("augment.hflip", cfg.augment.hflip),
                                    ("imil.enabled", cfg.imil.enabled)) if on]
    if changing:
        raise ConfigError(f"hkd.cache_teacher_features=true needs a fixed teacher input, but "
                          f"{', '.join(changing)} change(s) it every epoch (set augment.policy=none, "
                          "augment.hflip=false and imil.enabled=false, or compute the teacher every step)")


def typed_base() -> DictConfig:
    """``base.yaml`` on the schema, struct mode on."""
    base_path = experiments_dir() / "base.yaml"
    cfg = merge_layer(OmegaConf.structured(Config), _load_yaml(base_path), str(base_path))
    lock_keys(cfg)
    check_ranges(cfg, str(base_path))
    return cfg


def add_layer(cfg: DictConfig, layer: DictConfig, source: str) -> DictConfig:
    """``layer`` (a file's keys or one override) over ``cfg``, renamed keys moved, types and ranges
    checked with ``source`` named."""
    cfg = merge_layer(cfg, migrate_renamed_keys(layer, source), source)
    check_ranges(cfg, source)
    return cfg


def add_layers(cfg: DictConfig, layers: list[tuple[DictConfig, str]]) -> DictConfig:
    for layer, source in layers:
        cfg = add_layer(cfg, layer, source)
    return cfg


def pretrained_input_defaults(backbone: str, channels: int | None = None) -> DictConfig | None:
    """The input timm's weights for ``backbone`` were trained on (size, channels, mean, std) as a
    layer of ``data`` keys, None when timm has no such weights; with ``channels`` other than the
    weights' (e.g. 1 for grayscale), the mean and std are averaged over the weights' channels."""
    import timm

    pretrained = timm.models.get_pretrained_cfg(backbone)
    if pretrained is None or not pretrained.input_size:
        return None
    own, height, _ = pretrained.input_size
    channels = channels or own
    mean, std = ([float(v) for v in values] for values in (pretrained.mean, pretrained.std))
    if channels != own:
        mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
    return OmegaConf.create({"data": {"image_size": int(height), "channels": int(channels),
                                      "mean": mean[:channels], "std": std[:channels]}})


def with_pretrained_defaults(cfg: DictConfig, layers: list[tuple[DictConfig, str]],
                             overrides: Collection[str]) -> DictConfig:
    """``model.pretrained=true``: the configuration again with timm's input settings for the
    backbone in place of base.yaml's, so that only what an experiment file or override sets wins
    (a channel count set there keeps timm's mean and std, averaged to it)."""
    backbone = str(cfg.model.backbone)

    def merged(defaults: DictConfig) -> DictConfig:
        base = add_layer(typed_base(), defaults, f"timm's pretrained configuration of {backbone}")
        return add_overrides(add_layers(base, layers), overrides)

    defaults = pretrained_input_defaults(backbone)
    if defaults is None:
        return cfg
    cfg = merged(defaults)
    if cfg.data.channels != defaults.data.channels:  # set by the user
        cfg = merged(pretrained_input_defaults(backbone, int(cfg.data.channels)))
    return cfg


def add_overrides(cfg: DictConfig, overrides: Collection[str]) -> DictConfig:
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override '{override}' must look like key=value")
        cfg = add_layer(cfg, OmegaConf.from_dotlist([override]), f"override '{override}'")
    return cfg


def load_run_config(saved: Path, overrides: Collection[str] = ()) -> DictConfig:
    """A run's saved ``config.yaml`` on today's schema (keys added since the run take their
    defaults), with ``overrides`` on top."""
    return add_overrides(add_layer(typed_base(), _load_yaml(saved), str(saved)), overrides)


def load_config(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Merge base, experiment file(s) and ``key=value`` overrides; resolve interpolations."""
    experiment_path = resolve_experiment_path(name_or_path)
    layers = [(layer, str(path)) for path, layer in _experiment_chain(experiment_path)]
    cfg = add_overrides(add_layers(typed_base(), layers), overrides)
    if cfg.model.pretrained is True:  # the model's own input settings, under every explicit one
        cfg = with_pretrained_defaults(cfg, layers, overrides)
    if cfg.name is None:
        cfg.name = experiment_name(experiment_path)
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(f"cannot resolve '{getattr(error, 'full_key', '?')}': {error.msg}") \
            from error
    check_ranges(cfg, "the resolved configuration")  # values that came through an interpolation
    validate(cfg)
    return cfg


def shortcut_spec(shortcut: DictConfig | None, n_classes: int) -> ShortcutSpec | None:
    """``data.shortcut`` as a checked spec, or None when it is off."""
    if not shortcut or not shortcut.get("kind"):
        return None
    from hkd.data.shortcut import DEFAULT_TEXTS, ShortcutSpec
    spec = ShortcutSpec(kind=str(shortcut.kind), bias=None if shortcut.bias is None else float(shortcut.bias),
                        val=str(shortcut.val), test=str(shortcut.test), size=float(shortcut.size),
                        intensity=float(shortcut.intensity),
                        texts=tuple(shortcut.texts) if shortcut.texts else DEFAULT_TEXTS)
    spec.check(n_classes)
    return spec


UNET_WIDTHS = 6  # a MONAI BasicUNet's features (the prior generator, IMIL's propagation): 5 levels + output


def validate(cfg: DictConfig) -> None:
    """Checks that OmegaConf's types cannot express."""
    for key, allowed in ENUMERATED.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise not_one_of(f"{key}={value!r}", value, allowed)
    if str(cfg.checkpoint.monitor).startswith(("val/cf", "val/roi/")) and not cfg.counterfactual.enabled:
        raise ConfigError(f"checkpoint.monitor={cfg.checkpoint.monitor} needs the counterfactual views: "
                          "add counterfactual.enabled=true")
    if cfg.hkd.prior == "none" and cfg.data.prior_generator and cfg.method.name == "hkd":
        raise ConfigError("hkd.prior=none trains the teacher on raw images (the self-distillation control); "
                          "data.prior_generator would give it regions: leave one of them out")
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
    if cfg.data.format != "synthetic" and not cfg.data.root:
        raise ConfigError(f"data.root is required for data.format={cfg.data.format}: "
                          f"add data.root=/path/to/data to the command line "
                          f"(make experiment NAME={cfg.name} ARGS=\"data.root=...\")")
    # a method's traits import its module (torch): only looked up where an option needs them
    if cfg.model.compile and METHODS[cfg.method.name].double_backward:
        raise ConfigError(f"model.compile=true cannot train method.name={cfg.method.name}: its loss "
                          "differentiates a gradient (double backward), which torch.compile does not support")
    if cfg.data.folds and not 0 <= cfg.data.fold < cfg.data.folds:
        raise ConfigError(f"data.fold={cfg.data.fold} must be in 0..{cfg.data.folds - 1} "
                          f"(data.folds={cfg.data.folds})")
    check_loggers(cfg)
    if cfg.logging.wandb == "offline" and cfg.logging.log_model:
        raise ConfigError("logging.log_model=true needs logging.wandb=online "
                          "(offline W&B runs cannot upload checkpoints)")
    if (cfg.augment.mixup or cfg.augment.cutmix) and not METHODS[cfg.method.name].mixes_batches:
        raise ConfigError(f"augment.mixup / augment.cutmix mix images but not their priors: "
                          f"use them with method.name=baseline, not {cfg.method.name}")
    for key in ("prior_generator.features", "imil.propagate_features"):
        widths = list(OmegaConf.select(cfg, key))
        if len(widths) != UNET_WIDTHS or min(widths) <= 0:
            raise ConfigError(f"{key}={widths}: a BasicUNet needs {UNET_WIDTHS} positive widths "
                              "(five levels and the output's), e.g. [8, 16, 32, 64, 128, 8]")
    if len(cfg.data.mean) != cfg.data.channels or len(cfg.data.std) != cfg.data.channels:
        raise ConfigError(f"data.mean and data.std need one value per channel "
                          f"(data.channels={cfg.data.channels})")


def check_loggers(cfg: DictConfig) -> None:
    """``logging.loggers``: known dashboards whose package is installed."""
    import importlib.util

    for name in cfg.logging.loggers:
        if name not in LOGGERS:
            raise not_one_of(f"logging.loggers: {name!r}", name, LOGGERS)
        if name == "wandb" and cfg.logging.wandb == "disabled":
            continue  # listed but turned off: no package needed
        if importlib.util.find_spec(LOGGERS[name]) is None:
            where = "wandb" if name == "wandb" else "'hkd[loggers]'"
            raise ConfigError(f"logging.loggers: {name} needs the {LOGGERS[name]} package: "
                              f"pip install {where}")


def check_trainer_arguments(cfg: DictConfig) -> None:
    """Every ``trainer.*`` key must be an argument of ``lightning.Trainer`` that hkd does not set
    (Lightning is imported only when there are keys beyond the schema's)."""
    added = [key for key in cfg.trainer if key not in TYPED_TRAINER_KEYS]
    if not added:
        return
    import lightning as L

    accepted = [name for name in inspect.signature(L.Trainer.__init__).parameters
                if name not in ("self", *MANAGED_TRAINER_ARGUMENTS)]
    for key in added:
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
