"""Lightning's CSV logger (conf/logger/csv.yaml), continuing the metrics.csv it finds instead of
deleting it. A run's stages can start new loggers in its folder: under `trainer=ddp_cpu` the test
stage runs in new processes, whose logger Lightning would start by deleting the fit stage's rows
(`_ExperimentWriter._check_log_dir_exists`). A resumed run sets its earlier rows aside first
(training/resume.py), so it starts a file of its own as before."""

from __future__ import annotations

import csv

from lightning.pytorch.loggers.csv_logs import CSVLogger, ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _ContinuingWriter(ExperimentWriter):
    """Appends to the metrics.csv in its folder, under that file's header (new keys rewrite the file
    with the wider header, as Lightning's writer does)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class ContinuingCSVLogger(CSVLogger):
    """CSVLogger whose writer continues the run's metrics.csv (the same arguments)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
