"""What a format's loader is told about the data set: plain values (``hkd.run.build.data_source``
makes them from the ``data`` keys), and the embedded benchmark's generator settings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from hkd.errors import ConfigError

FINDING_CLASSES = ("covid19", "viral", "bacterial", "fungal")
HEALTHY_CLASS = "healthy"
VAL_SHORTCUTS = ("biased", "random")  # data.synthetic.val_shortcut
FORMAT_VERSION = 2  # 2: lung outlines written as the `lung` category


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything the generated data depends on (its hash names the cache folder)."""

    seed: int = 0
    n_train: int = 600
    n_val: int = 150
    n_test: int = 300
    size: int = 96
    contrast: float = 0.1
    shortcut_bias: float | None = 0.95
    include_healthy: bool = False
    val_shortcut: str = "biased"  # or "random": a shortcut-free validation split

    def __post_init__(self) -> None:
        if self.val_shortcut not in VAL_SHORTCUTS:
            raise ConfigError(f"data.synthetic.val_shortcut={self.val_shortcut}: not one of "
                              f"{', '.join(VAL_SHORTCUTS)}")

    @property
    def classes(self) -> tuple[str, ...]:
        return FINDING_CLASSES + ((HEALTHY_CLASS,) if self.include_healthy else ())

    def key(self) -> str:
        fields = asdict(self)
        if fields["val_shortcut"] == "biased":  # the default leaves earlier data sets' names as they were
            del fields["val_shortcut"]
        text = json.dumps({**fields, "version": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DataSource:
    """Where the data set lies and how its labels become classes."""

    format: str                                   # the layout (a name registered in FORMATS)
    root: str | None = None                       # the data folder (None for synthetic)
    cache_dir: str = ".cache/hkd"                 # where generated data sets are written
    classes: tuple[str, ...] | None = None        # class names in order; None = from the data
    include_healthy: bool = False                 # covid-chestxray: add the fifth "healthy" class
    relevant_categories: tuple[str, ...] | None = None  # COCO categories that are relevant regions
    finding_map: dict[str, str] = field(default_factory=dict)  # finding substring -> class
    val_fraction: float = 0.15                    # kermany: share of training patients for validation
    synthetic: SyntheticSpec | None = None        # synthetic: the generator's settings
