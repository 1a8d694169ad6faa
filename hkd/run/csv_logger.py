"""A CSV logger that appends to ``metrics.csv`` when a run is resumed (Lightning's deletes it)."""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    def _file_header(self) -> list[str]:
        if not os.path.isfile(self.metrics_file_path):
            return []
        with open(self.metrics_file_path, newline="") as handle:
            return next(csv.reader(handle), [])

    def _check_log_dir_exists(self) -> None:
        self.metrics_keys = self._file_header()

    def _record_new_keys(self) -> set[str]:
        # another process (a ddp_spawn child, a resumed run) may have added columns since this
        # writer last looked: start from the file's own header
        self.metrics_keys = sorted(set(self.metrics_keys) | set(self._file_header()))
        return super()._record_new_keys()


class AppendingCSVLogger(CSVLogger):
    """``metrics.csv`` directly in ``save_dir``, kept and extended across resumes."""

    def __init__(self, save_dir: str) -> None:
        super().__init__(save_dir=save_dir, name="", version="")

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
