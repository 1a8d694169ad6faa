"""The run directory: its id (shared by DDP ranks), and its ``summary.json``."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hkd.atomic import atomic_write_json
from hkd.errors import ConfigError

RUN_ID_ENV = "HKD_RUN_ID"
_USED_RUN_IDS: set[str] = set()


def launcher_run_id(env: Mapping[str, str], fingerprint: str = "") -> str | None:
    """An id every rank of a torchrun or SLURM job computes alike (all ranks run the same sequence
    of runs, so the count keeps successive runs apart); None outside such jobs. Under SLURM (the
    batch script's shell or its srun tasks) it is the job's id and the configuration's
    ``fingerprint``: a requeued job (same ``SLURM_JOB_ID``) finds its run directory again, and the
    job's other commands (other configurations) get their own."""
    torchrun = env.get("TORCHELASTIC_RUN_ID", "none")
    if torchrun != "none":
        return f"torchrun-{torchrun[:8]}-{len(_USED_RUN_IDS)}"
    if "SLURM_JOB_ID" in env:
        step = f".{env['SLURM_STEP_ID']}" if "SLURM_STEP_ID" in env else ""
        return f"slurm-{env['SLURM_JOB_ID']}{step}-{fingerprint or 'run'}-{len(_USED_RUN_IDS)}"
    return None


def config_fingerprint(cfg: DictConfig) -> str:
    """Eight hex digits of the resolved configuration (``resume`` aside): the same command gives
    the same fingerprint in a requeued job."""
    settings = {key: value for key, value in OmegaConf.to_container(cfg, resolve=True).items()
                if key != "resume"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


def requeued_slurm_run(run_dir: Path, env: Mapping[str, str]) -> bool:
    """A SLURM job that was requeued (``SLURM_RESTART_COUNT`` > 0) and left checkpoints in its run
    directory: the run continues from them instead of being refused."""
    return int(env.get("SLURM_RESTART_COUNT", "0") or 0) > 0 and bool(checkpoint_folders(run_dir))


def run_id(fingerprint: str = "") -> str:
    """A new id for each run of this process, shared with its DDP children: they inherit the
    environment, where a launcher (or the user) may also set ``HKD_RUN_ID`` beforehand. Ranks
    started independently (torchrun, srun) and SLURM jobs derive it from the launcher's job id
    (and the configuration's ``fingerprint``)."""
    current = os.environ.get(RUN_ID_ENV)
    if not current or current in _USED_RUN_IDS:
        current = launcher_run_id(os.environ, fingerprint)
        if current is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(f"this process is one of WORLD_SIZE={os.environ['WORLD_SIZE']} ranks started "
                               f"by a launcher: set {RUN_ID_ENV} to the same value on every rank (e.g. "
                               f"{RUN_ID_ENV}=$(date +%Y%m%d-%H%M%S) on each node), so they share one run "
                               "directory")
        current = current or time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        os.environ[RUN_ID_ENV] = current
    _USED_RUN_IDS.add(current)
    return current


def new_run_dir(output_dir: str, name: str, fingerprint: str = "") -> Path:
    path = Path(output_dir) / name / run_id(fingerprint)
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_folders(run_dir: Path) -> list[Path]:
    return [path for path in (run_dir / "checkpoints", run_dir / "teacher" / "checkpoints")
            if path.is_dir() and any(path.iterdir())]


def refuse_used_run_dir(run_dir: Path) -> None:
    """A fresh run must not train into a directory an earlier run left checkpoints in (a reused
    ``HKD_RUN_ID``, or the same command twice in one SLURM job): it would mix their metrics and
    continue a stale HKD teacher."""
    used = checkpoint_folders(run_dir)
    if used:
        raise ConfigError(f"{run_dir} already holds a run (checkpoints in {used[0]}): continue it with "
                          f"resume={run_dir}, or start a new one with another {RUN_ID_ENV}")


def code_version() -> str | None:
    """The git commit of the hkd source that runs (with ``+changes`` when the tree is modified), or
    None outside a git checkout (an installed wheel)."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        changed = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "hkd"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+changes" if changed else "")


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_json(path, summary)
