"""The configuration: every key declared once (``schema``), the names keys take (``choices``, on
``registry``), where experiment files are (``experiment_files``), loading and checking a run's
configuration (``loading``) and the generated ``base.yaml`` and key table (``reference``).

``from hkd.config import load_config`` (and the other names of ``loading``) works as before; they
are imported on first use, so the library's modules can read ``hkd.config.choices`` without
loading OmegaConf."""

from __future__ import annotations

from importlib import import_module
from typing import Any

LOADING = ("ConfigError", "check_cacheable", "experiments_dir", "load_config", "load_run_config",
           "save_config", "shortcut_spec", "to_dotlist", "typed_base", "validate")


def __getattr__(name: str) -> Any:
    if name in LOADING:
        return getattr(import_module("hkd.config.loading"), name)
    raise AttributeError(f"module 'hkd.config' has no attribute {name!r}")
