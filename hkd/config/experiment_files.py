"""Where experiment files are: ``experiments_dir()`` resolves a name to its YAML file, and
``list_experiments()`` lists them (``hkd list``). Imports nothing heavy, so the command line can
answer before torch is loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hkd.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # hkd/
SWEEPS = "sweeps"  # experiments/sweeps/: W&B sweep files (`wandb sweep FILE`), not experiments


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
    available = [experiment.name for experiment in list_experiments()]
    raise ConfigError(f"unknown experiment '{name_or_path}': no file {candidate}; "
                      f"available: {', '.join(available)}")


def experiment_name(path: Path) -> str:
    """A run's default name: the experiment file's name, with its folder inside ``experiments/``
    (``pneuknownet/resnet50_weak.yaml`` -> ``pneuknownet_resnet50_weak``)."""
    try:
        return "_".join(path.resolve().relative_to(experiments_dir().resolve()).with_suffix("").parts)
    except ValueError:  # a file elsewhere
        return path.stem


@dataclass(frozen=True)
class ExperimentFile:
    name: str          # what `hkd train NAME` takes
    path: Path
    description: str   # the file's first comment line
    shipped: bool      # inside the installed package (False: a local experiments/ folder)


def description(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def list_experiments() -> list[ExperimentFile]:
    """Every experiment: the local folder's (``$HKD_EXPERIMENTS`` or ``./experiments``, which take
    precedence) and the shipped ones that no local file of the same name hides."""
    shipped_dir = (PACKAGE_ROOT / "experiments").resolve()
    folders = [experiments_dir().resolve()]
    if shipped_dir not in folders:
        folders.append(shipped_dir)
    found: dict[str, ExperimentFile] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.yaml")):
            name = str(path.relative_to(folder).with_suffix(""))
            if path.stem != "base" and path.parent.name != SWEEPS and name not in found:
                found[name] = ExperimentFile(name, path, description(path), folder == shipped_dir)
    return sorted(found.values(), key=lambda experiment: experiment.name)
