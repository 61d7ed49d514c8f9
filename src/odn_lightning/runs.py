"""What every run does around the Trainer: build callbacks and loggers, print, write metrics.json."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from .atomic import OutputWriteError, atomic_write_text, shown
from .config_checks import ConfigError
from .data.datamodule import DataRootError, DataValidationError
from .data.records import AnnotationError, ImageDecodeError
from .data.synthetic.storage import SyntheticLockError
from .evaluation.cofw68_benchmark import ResultFileError
from .evaluation.recalibration import CalibrationUnavailable
from .evaluation.report_files import truncated_splits
from .evaluation.scoring import PredictionsError
from .inference.detectors import DetectorError
from .inference.export_metadata import ExportError
from .inference.media import MediaError
from .models import PretrainedWeightsUnavailable
from .training.checkpoints import CheckpointError, CheckpointWriteError
from .training.module import NonFiniteError
from .training.quiet import quiet_lightning

log = logging.getLogger(__name__)


class RunError(Exception):
    """A run that ended early for a reason it states in one line; exits with `exit_code`."""

    exit_code = 1


# Problems of the user's input or machine, not of the code: one line saying what to do, no traceback.
USER_ERRORS = (
    RunError,
    ConfigError,
    DataRootError,
    DataValidationError,
    AnnotationError,
    ImageDecodeError,
    SyntheticLockError,
    PretrainedWeightsUnavailable,
    CheckpointError,
    CheckpointWriteError,
    OutputWriteError,
    NonFiniteError,
    FileNotFoundError,
    MediaError,
    DetectorError,
    ExportError,
    PredictionsError,
    ResultFileError,
    CalibrationUnavailable,
)


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind `err`, also when wrapped (Hydra wraps what `instantiate` raises)."""
    while err is not None:
        if isinstance(err, USER_ERRORS):
            return err
        err = err.__cause__ or err.__context__
    return None


def error_message(err: BaseException) -> str:
    """What to print of a user error. A DataLoader worker's error arrives re-raised with the worker's
    traceback in its message: only the original message is kept."""
    message = str(err)
    if message.startswith("Caught ") and "Original Traceback" in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return message


def finish_wandb(exit_code: int = 0) -> None:
    """End this process's W&B run, if one is open. Lightning's WandbLogger reuses an open run, so the
    jobs of a multirun launched in one process would all log into the first job's run; ending it
    also completes an offline run's log (`run-<id>.wandb`, what `wandb sync` uploads) now, not at exit."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=exit_code)


def run_reporting_user_errors(task: Callable, *args):
    """Run an entry point's task; a user-facing error exits with `error: <message>` (non-zero)."""
    try:
        return task(*args)
    except Exception as err:
        finish_wandb(exit_code=1)  # marked failed, and closed before the next job of a sweep starts
        cause = user_error(err)
        if cause is None:
            raise
        message = error_message(cause)
        log_to_files(logging.ERROR, message)
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(getattr(cause, "exit_code", 1))


def torch_device(choice: str) -> torch.device:
    """The device a `device=` option names: `auto` (CUDA where visible, else the CPU), `cpu`, `cuda`,
    `cuda:N`. CUDA where none is visible, or a name torch does not know, is a ConfigError (one line)."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(choice))
    except RuntimeError:
        raise ConfigError(f"device={choice}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={choice}: no CUDA device is visible here; use device=auto or device=cpu")
    return device


def log_to_files(level: int, message: str) -> None:
    """A message into the run's log file only (the console gets it as the `error:` line)."""
    record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


_RUN_FILES: list[logging.Handler] = []  # what `log_to_run_file` last gave Lightning's loggers


def log_to_run_file() -> None:
    """Lightning's messages into the run's log file too (its logger does not propagate to the root
    logger, where Hydra's `<task>.log` handler sits); an earlier run's file in this process (a sweep's
    previous job, a notebook) is taken out of them."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.setLevel(min(logger.level or logging.INFO, logging.INFO))
        for handler in [h for h in logger.handlers if h in _RUN_FILES and h not in files]:  # earlier runs'
            logger.removeHandler(handler)
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)
    _RUN_FILES.clear()
    _RUN_FILES.extend(files)


def log_metrics(metrics: Mapping[str, float | None]) -> None:
    """The final test numbers into the run's log (the console shows them as a table)."""
    shown = {
        k: v for k, v in metrics.items() if k.startswith("test/") and k.endswith(("/nme", "/fr_10", "/faces"))
    }
    log.info(
        "final metrics: "
        + ", ".join(f"{k}={v:.6g}" if v is not None else f"{k}=null" for k, v in shown.items())
    )


def check_finite(metrics: Mapping[str, float | None], output_dir: str | Path) -> None:
    """Exit non-zero when a split's NME is not finite: NaN predictions are a failed run, whatever else
    metrics.json (which holds them as null) says."""
    broken = [k for k, v in metrics.items() if k.endswith("/nme") and (v is None or not math.isfinite(v))]
    if broken:
        raise NonFiniteError(
            f"{', '.join(broken)} not finite: the network predicts NaN or infinite points (see "
            f"{Path(output_dir) / 'predictions.csv'}); metrics.json holds them as null"
        )


def instantiate_each(node: DictConfig | None) -> list:
    """Instantiate every `_target_` entry of a config group that holds named objects."""
    if not node:
        return []
    return [
        instantiate(spec) for spec in node.values() if isinstance(spec, DictConfig) and "_target_" in spec
    ]


def scalar_metrics(metrics: Mapping) -> dict[str, float]:
    """Every one-number metric as a float, sorted by key; NaN and inf are kept (a failure must show)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return dict(sorted(out.items()))


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    # soft_wrap: a long path stays one line, so the printed YAML can be copied back as YAML.
    Console(soft_wrap=True).print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml", theme="ansi_dark"))


def config_files(cfg: DictConfig) -> list[str]:
    """Where a run's whole config can be read: Hydra's record of it as composed and, with the CSV
    logger, the hyper-parameters every logger gets (resolved, flat)."""
    files = []
    if HydraConfig.initialized():
        hydra = HydraConfig.get()
        composed = Path(hydra.runtime.output_dir) / str(hydra.output_subdir) / "config.yaml"
        if hydra.output_subdir and composed.is_file():  # a resume moved it and said where
            files.append(f"{composed} (as composed)")
    csv = csv_log_dir(cfg)
    if csv is not None:
        files.append(f"{csv / 'hparams.yaml'} (resolved, flat)")
    return files


def csv_log_dir(cfg: DictConfig) -> Path | None:
    """The CSV logger's folder, `<save_dir>/<name>/<version>` as Lightning's CSVLogger joins them;
    None without a CSV logger."""
    csv = OmegaConf.select(cfg, "logger.csv")
    if csv is None or not csv.get("save_dir"):
        return None
    return Path(csv.save_dir, csv.get("name") or "", str(csv.get("version") or ""))


def apply_extras(cfg: DictConfig) -> None:
    """What `extras` asks of every run before its task (lightning-hydra-template's `extras`), after
    silencing what does not apply (`quiet_lightning`)."""
    quiet_lightning()
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config"):
        print_config(cfg)
    else:
        say_where_the_config_is(cfg)


@rank_zero_only
def say_where_the_config_is(cfg: DictConfig) -> None:
    # Quiet by default (the config is some 180 lines): one line says where to read it.
    where = " and ".join(config_files(cfg)) or "the run directory"
    log.info(f"config: {where}; extras.print_config=true prints it here")


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: Mapping[str, float]) -> Path:
    """metrics.json, written atomically, every key kept: JSON has no NaN or inf, so those are null."""

    values = {k: None if v is None or not math.isfinite(v) else v for k, v in metrics.items()}
    return atomic_write_text(
        Path(output_dir) / "metrics.json", json.dumps(values, indent=2, allow_nan=False) + "\n"
    )


# The summary's columns: header, and the metric's name under `test/<split>/`.
SUMMARY_COLUMNS = (
    ("NME", "nme"),
    ("mean shape NME", "nme_mean_shape"),
    ("AUC@0.08", "auc_08"),
    ("FR@0.10", "fr_10"),
)


def _summary_cell(metrics: Mapping[str, float | None], key: str) -> str:
    if key not in metrics:
        return "-"
    value = metrics[key]
    return "NaN" if value is None or math.isnan(value) else f"{value:.4f}"


def summary_table(title: str, metrics: Mapping[str, float | None]) -> tuple[Table | None, list[str]]:
    """The test splits' main numbers, a row per split: faces evaluated, NME, the mean-shape
    baseline's NME, AUC and FR (None without test metrics); and its footnotes: a split evaluated in
    part is starred and said so (a line of its own, not cut to the table's width)."""
    splits = list(
        dict.fromkeys(k.split("/")[1] for k in metrics if k.startswith("test/") and k.count("/") == 2)
    )
    columns = [(h, name) for h, name in SUMMARY_COLUMNS if any(f"test/{s}/{name}" in metrics for s in splits)]
    if not columns:
        return None, []
    table = Table(title=title)
    table.add_column("split")
    table.add_column("faces", justify="right")
    for header, _ in columns:
        table.add_column(header, justify="right")
    truncated = truncated_splits(metrics, splits)
    for split in splits:
        faces = metrics.get(f"test/{split}/faces")
        count = "-" if faces is None else f"{faces:.0f}"
        if split in truncated:
            count = "{} of {} *".format(*truncated[split])
        table.add_row(split, count, *(_summary_cell(metrics, f"test/{split}/{name}") for _, name in columns))
    return table, ["* truncated: trainer.limit_test_batches or skipped bad faces"] if truncated else []


@rank_zero_only
def print_summary(title: str, metrics: Mapping[str, float | None], notes: Mapping[str, str]) -> None:
    """The numbers a researcher looks at first (`summary_table`), then the notes (paths), each whole
    on its own line; the same into the run's log file. NaN or None shows as NaN, no metric as -."""
    table, footnotes = summary_table(title, metrics)
    lines = footnotes + [f"{key}: {shown(str(value))}" for key, value in notes.items()]
    if table is not None:
        Console().print(table)
    if lines:
        print("\n".join(lines), flush=True)
    rendered = io.StringIO()
    if table is not None:
        Console(file=rendered, width=160).print(table)
    log_to_files(logging.INFO, f"{title} summary:\n{rendered.getvalue()}" + "\n".join(lines))


RUN_RECORD = "run.json"


def name_paths_whole(cfg: DictConfig, keys: list[str]) -> None:
    """Each of `keys` that names an existing file or folder, made absolute (against the folder the
    command started in): run.json, the summary, report.md and landmarks.json then name it whole, as
    they do every file the run writes. Anything else (a camera index, null) is left as given."""
    with open_dict(cfg):
        for key in keys:
            value = OmegaConf.select(cfg, key)
            if isinstance(value, str) and value and os.path.exists(value):
                OmegaConf.update(cfg, key, os.path.abspath(value))


@rank_zero_only
def write_run_record(output_dir: str | Path, record: Mapping[str, object]) -> Path:
    """run.json, written atomically: what the run is and where its files are (name, group, tags,
    checkpoint paths). metrics.json keeps numbers only, so sweeps and tables read it as numbers."""
    return atomic_write_text(Path(output_dir) / RUN_RECORD, json.dumps(record, indent=2) + "\n")
