"""The dashboards a run writes to (``logging.loggers``): the CSV log always, plus any of W&B,
TensorBoard and MLflow. Each keeps one identity per run directory and stage, so a ``resume=``
continues the same W&B run, TensorBoard folder and MLflow run. Under ``wandb agent`` (a sweep) the
student logs into the run the agent made (``WANDB_RUN_ID``) and an HKD teacher stage logs to its
CSV file only, so the sweep sees one run per command."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from hkd.atomic import atomic_write_text
from hkd.run import imil_setup
from hkd.run.csv_logger import AppendingCSVLogger


def saved_id(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def remembered_id(path: Path, make) -> str | None:
    """The id saved in ``path``, or ``make()``'s, saved there (None: nothing to remember yet)."""
    saved = saved_id(path)
    if saved is not None:
        return saved
    made = make()
    if made:
        atomic_write_text(path, made + "\n")
    return made


def mlflow_uri(cfg: DictConfig) -> str:
    """``logging.mlflow_uri``, or one SQLite store for every run under ``output_dir``."""
    return cfg.logging.mlflow_uri or f"sqlite:///{(Path(cfg.output_dir) / 'mlflow.db').resolve()}"


def build_loggers(cfg: DictConfig, run_dir: Path, job_type: str) -> list[Logger]:
    dashboards = set(cfg.logging.loggers)
    name = f"{cfg.name}/{run_dir.name}" + ("" if job_type == "train" else f"/{job_type}")
    tags = [cfg.method.name, cfg.model.backbone, cfg.data.format, *imil_setup.run_tags(cfg)]
    loggers: list[Logger] = [AppendingCSVLogger(str(run_dir))]
    sweep = os.environ.get("WANDB_SWEEP_ID")  # run by `wandb agent`: the agent's run is the student's
    if "wandb" in dashboards and cfg.logging.wandb != "disabled" and not (sweep and job_type != "train"):
        from lightning.pytorch.loggers import WandbLogger

        # W&B ids: lowercase letters and digits; `wandb sync` joins an offline run's resumed parts
        agent_run = os.environ.get("WANDB_RUN_ID") if sweep else None
        run_id = remembered_id(run_dir / "wandb-id.txt", lambda: agent_run or secrets.token_hex(6))
        loggers.append(WandbLogger(
            id=run_id, resume="allow",
            save_dir=str(run_dir), project=cfg.logging.project, entity=cfg.logging.entity, name=name,
            group=cfg.name, job_type=job_type, offline=cfg.logging.wandb == "offline",
            log_model=cfg.logging.log_model, tags=tags))
    if "tensorboard" in dashboards:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=job_type,
                                         default_hp_metric=False))
    if "mlflow" in dashboards:
        loggers.append(mlflow_logger(cfg, run_dir, name, tags))
    return loggers


def mlflow_logger(cfg: DictConfig, run_dir: Path, name: str, tags: list[str]) -> Logger:
    """An MLflow run in experiment ``logging.project``; its id is kept in ``RUN_DIR/mlflow-id.txt``
    (rank zero makes it), so a resumed run logs into the same MLflow run."""
    from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.utilities import rank_zero_only

    class ResumableMLFlowLogger(MLFlowLogger):
        """MLflow refuses to change a logged parameter: a resumed run adds only the parameters its
        MLflow run does not have yet (what the resume changed is in ``RUN_DIR/config.yaml``)."""

        @rank_zero_only
        def log_hyperparams(self, params) -> None:
            logged = self.experiment.get_run(self.run_id).data.params
            fresh = {key: value for key, value in _flatten_dict(_convert_params(params)).items()
                     if key not in logged}
            super().log_hyperparams(fresh)

    id_file = run_dir / "mlflow-id.txt"
    saved = saved_id(id_file)
    logger = ResumableMLFlowLogger(experiment_name=cfg.logging.project, run_name=name,
                                   tracking_uri=mlflow_uri(cfg), run_id=saved,
                                   tags={"group": cfg.name, **{tag: "true" for tag in tags}})
    if saved is None:
        remembered_id(id_file, lambda: logger.run_id)  # starts the run on rank zero; None elsewhere
    return logger
