"""What every run does around the Trainer: build callbacks and loggers, print, write metrics.json."""

from __future__ import annotations

import json
import logging
import math
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from .atomic import OutputWriteError, atomic_write_text
from .checkpoints import CheckpointError, CheckpointWriteError
from .config_checks import ConfigError
from .data.datamodule import DataRootError, DataValidationError
from .data.records import AnnotationError, ImageDecodeError
from .data.synthetic.storage import SyntheticLockError
from .models import PretrainedWeightsUnavailable
from .module import NonFiniteError

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


def run_reporting_user_errors(task: Callable, *args):
    """Run an entry point's task; a user-facing error exits with `error: <message>` (non-zero)."""
    try:
        return task(*args)
    except Exception as err:
        cause = user_error(err)
        if cause is None:
            raise
        message = error_message(cause)
        log_to_files(logging.ERROR, message)
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(getattr(cause, "exit_code", 1))


def log_to_files(level: int, message: str) -> None:
    """A message into the run's log file only (the console gets it as the `error:` line)."""
    record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def log_to_run_file() -> None:
    """Lightning's messages into the run's log file too (its logger does not propagate to the root
    logger, where Hydra's `<task>.log` handler sits)."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for name in ("lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        logger.setLevel(min(logger.level or logging.INFO, logging.INFO))
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)


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
    Console().print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml", theme="ansi_dark"))


def apply_extras(cfg: DictConfig) -> None:
    """What `extras` asks of every run before its task (lightning-hydra-template's `extras`)."""
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if extras.get("print_config"):
        print_config(cfg)


@rank_zero_only
def write_metrics(output_dir: str | Path, metrics: Mapping[str, float]) -> Path:
    """metrics.json, written atomically, every key kept: JSON has no NaN or inf, so those are null."""

    values = {k: None if v is None or not math.isfinite(v) else v for k, v in metrics.items()}
    return atomic_write_text(
        Path(output_dir) / "metrics.json", json.dumps(values, indent=2, allow_nan=False) + "\n"
    )


@rank_zero_only
def print_summary(title: str, metrics: Mapping[str, float | None], notes: Mapping[str, str]) -> None:
    """The few numbers a researcher looks at first: NMEs per split (and their baselines), the splits
    evaluated only in part (`faces` below `faces_in_split`), then paths. NaN or None shows as NaN."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key.startswith("test/") and key.rsplit("/", 1)[-1] in ("nme", "nme_mean_shape", "fr_10", "auc_08"):
            table.add_row(key, "NaN" if value is None or math.isnan(value) else f"{value:.4f}")
    for key, in_split in metrics.items():
        split, _, name = key.rpartition("/")
        faces = metrics.get(f"{split}/faces")
        if name == "faces_in_split" and faces is not None and in_split is not None and faces < in_split:
            table.add_row(
                split,
                f"{faces:.0f} of {in_split:.0f} faces (truncated: trainer.limit_test_batches or skipped bad faces)",
            )
    for key, value in notes.items():
        table.add_row(key, str(value))
    Console().print(table)
