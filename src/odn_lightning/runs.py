"""What every run does around the Trainer: build callbacks and loggers, print, write metrics.json."""

from __future__ import annotations

import json
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

from .data.datamodule import DataRootError, DataValidationError
from .data.records import AnnotationError
from .models import PretrainedWeightsUnavailable

# Problems of the user's input or machine, not of the code: one line saying what to do, no traceback.
USER_ERRORS = (
    DataRootError,
    DataValidationError,
    AnnotationError,
    PretrainedWeightsUnavailable,
    FileNotFoundError,
)


def user_error(err: BaseException) -> BaseException | None:
    """The user-facing error behind `err`, also when wrapped (Hydra wraps what `instantiate` raises)."""
    while err is not None:
        if isinstance(err, USER_ERRORS):
            return err
        err = err.__cause__ or err.__context__
    return None


def run_reporting_user_errors(task: Callable, *args):
    """Run an entry point's task; a user-facing error exits with `error: <message>` on one line."""
    try:
        return task(*args)
    except Exception as err:
        cause = user_error(err)
        if cause is None:
            raise
        sys.exit(f"error: {cause}")


def instantiate_each(node: DictConfig | None) -> list:
    """Instantiate every `_target_` entry of a config group that holds named objects."""
    if not node:
        return []
    return [
        instantiate(spec) for spec in node.values() if isinstance(spec, DictConfig) and "_target_" in spec
    ]


def scalar_metrics(metrics: Mapping) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and math.isfinite(value):
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
    path = Path(output_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(metrics), indent=2) + "\n")
    return path


@rank_zero_only
def print_summary(title: str, metrics: Mapping[str, float], notes: Mapping[str, str]) -> None:
    """The few numbers a researcher looks at first: NMEs per split (and their baselines), then paths."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key.startswith("test/") and key.rsplit("/", 1)[-1] in ("nme", "nme_mean_shape", "fr_10", "auc_08"):
            table.add_row(key, f"{value:.4f}")
    for key, value in notes.items():
        table.add_row(key, str(value))
    Console().print(table)
