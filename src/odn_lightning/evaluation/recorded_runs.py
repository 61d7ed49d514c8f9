"""The runs a folder holds, read back from what every entry point leaves: a run is a folder holding
`.hydra/config.yaml` or `metrics.json`; a sweep is a folder of runs, found at any depth. Each run is
known by what its command line set (`.hydra/overrides.yaml`), each key read as the value the run took
(its group choice in `.hydra/hydra.yaml`, else its config.yaml). Runs that differ only in the replicate
keys (the seed) are grouped into one row (`group_runs`), labelled by the keys whose values differ:
the rows of `compare` and `table4`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..atomic import shown
from ..config import dotted_leaves
from ..config_checks import ConfigError

HYDRA_DIR = ".hydra"
METRICS_FILE = "metrics.json"
# The collectors' own run directories hold .hydra/ too; they are not runs to compare.
COLLECTOR_TASKS = ("compare", "table4")
# Defaults of conf/compare.yaml (table4 groups its sweep with them): fnmatch patterns of override keys.
# Runs that differ only in these are replicas of one setting: one row, mean ± std over them.
REPLICATE_KEYS = ("seed",)
# Keys that do not change what is measured (where files go, workers, logging, printing): not a label.
IGNORE_KEYS = (
    "paths.*",
    "data.root",
    "data.num_workers",
    "ckpt_path",
    "group",
    "tags",
    "logger",
    "extras.*",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "callbacks.validation_pictures.count",
    "pictures",
)


@dataclass
class Run:
    """One run directory as compare reads it. `metrics` is None where metrics.json is missing or
    unreadable (`problem` says which); `config` is config.yaml with its interpolations unresolved."""

    run_dir: Path
    task: str
    overrides: dict[str, str | None]
    choices: dict[str, str | None] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] | None = None
    problem: str = ""

    def value(self, key: str) -> str | None:
        """What `key` was in this run, as text: its config-group choice, else its config value,
        else what its command line said; None where the run has no such key."""
        if key in self.choices:
            choice = self.choices[key]
            return None if choice is None else str(choice)
        found, value = _lookup(self.config, key)
        if found:
            return _as_text(value)
        return self.overrides.get(key)

    def shown_value(self, key: str) -> str | None:
        """`key` as a label shows it: as the command line wrote it where it did."""
        return self.overrides[key] if self.overrides.get(key) is not None else self.value(key)

    @property
    def test_splits(self) -> list[str]:
        splits = (self.config.get("data") or {}).get("test_splits") if self.config else None
        return [str(s) for s in splits] if isinstance(splits, list) else []

    @property
    def run_name(self) -> str | None:
        """config.yaml's run_name, unless it is an interpolation (only the run's own process resolves it)."""
        name = self.config.get("run_name") if self.config else None
        return None if name is None or _is_interpolation(name) else str(name)


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _lookup(config: dict[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def parse_override(line: str) -> tuple[str, str | None]:
    """`model=odn` -> ("model", "odn"); `+x=1` and `++x=1` -> ("x", "1"); `~x` (deleted) -> ("x", None)."""
    deleted = line.startswith("~")
    key, _, value = line.lstrip("~+").partition("=")
    return key, None if deleted else value


def _load_yaml(path: Path) -> Any:
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # a torn or hand-edited file: named, with what to do
        raise ConfigError(
            f"cannot read {shown(path)}: {' '.join(str(err).split())[:200]}; repair or remove that run"
        ) from err


def is_run(folder: Path) -> bool:
    return (folder / HYDRA_DIR / "config.yaml").is_file() or (folder / METRICS_FILE).is_file()


def read_run(run_dir: str | Path) -> Run:
    """A run directory's overrides, group choices, config and metrics."""
    run_dir = Path(run_dir)
    hydra_dir = run_dir / HYDRA_DIR
    config = _load_yaml(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").is_file() else {}
    config = config if isinstance(config, dict) else {}
    hydra_config = _load_yaml(hydra_dir / "hydra.yaml") if (hydra_dir / "hydra.yaml").is_file() else {}
    hydra_node = (hydra_config or {}).get("hydra") or {}
    choices = (hydra_node.get("runtime") or {}).get("choices") or {}
    overrides_file = hydra_dir / "overrides.yaml"
    if overrides_file.is_file():
        lines = _load_yaml(overrides_file) or []
        overrides = dict(parse_override(str(line)) for line in lines)
    else:
        # Without its command line, a run is known by its name (runs older than .hydra/overrides.yaml).
        name = config.get("run_name")
        overrides = {"run_name": str(name) if name and not _is_interpolation(name) else run_dir.name}
    run = Run(
        run_dir=run_dir,
        task=str(config.get("task_name") or (hydra_node.get("job") or {}).get("name") or "run"),
        overrides=overrides,
        choices={str(k): v for k, v in choices.items()},
        config=config,
    )
    metrics_file = run_dir / METRICS_FILE
    if not metrics_file.is_file():
        run.problem = "no metrics.json: failed, or not finished"
        return run
    try:
        metrics = json.loads(metrics_file.read_text())
    except (OSError, ValueError) as err:
        run.problem = f"unreadable metrics.json ({' '.join(str(err).split())[:120]})"
        return run
    if not isinstance(metrics, dict):
        run.problem = "unreadable metrics.json (not a mapping of metric names to numbers)"
        return run
    run.metrics = metrics
    return run


def run_folders(folder: Path) -> list[Path]:
    """`folder` if it is a run, else every run below it (not below a run: its checkpoints and pictures
    are not searched), in the order of their names' numbers (job 2 before job 10), then of the names."""
    if is_run(folder):
        return [folder]
    found = []
    for parent, children, _ in os.walk(folder):
        parent_path = Path(parent)
        runs = [c for c in children if not c.startswith(".") and is_run(parent_path / c)]
        found += [parent_path / c for c in runs]
        # Runs are leaves; hidden folders (.submitit, .hydra) hold no runs.
        children[:] = sorted(c for c in children if c not in runs and not c.startswith("."))
    return found


def _natural_order(path: Path) -> tuple:
    """Sweep job folders begin with their number: 2_... before 10_..., seed2 before seed10."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(path))
    )


def runs_in(folder: str | Path) -> list[Run]:
    """The runs of one run or sweep directory (none for an empty sweep), the collectors' own left out."""
    runs = [read_run(path) for path in run_folders(Path(folder))]
    runs = [run for run in runs if run.task not in COLLECTOR_TASKS]
    return sorted(runs, key=lambda run: _natural_order(run.run_dir))


def find_runs(folders: Iterable[str | Path]) -> list[Run]:
    """The runs of every folder given (a run directory or a sweep), each once, in the order given."""
    runs: dict[Path, Run] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{shown(folder)} is not a folder: name run directories (holding .hydra/ or metrics.json) "
                "or sweep directories (folders of runs)"
            )
        found = runs_in(folder)
        if not found:
            raise FileNotFoundError(
                f"{shown(folder)} holds no run (no .hydra/config.yaml or metrics.json in it or below it): "
                "name run directories or sweep directories"
            )
        for run in found:
            runs.setdefault(run.run_dir.resolve(), run)
    return list(runs.values())


def newest_sweep(log_dir: str | Path, task: str = "train") -> Path | None:
    """The newest multirun of an entry point under `log_dir` (Hydra names sweeps by date and time)."""
    sweeps = sorted(Path(log_dir, task, "multiruns").glob("*/"), key=lambda p: p.name)
    return sweeps[-1] if sweeps else None


# ------------------------------------------------------------------------------------ the rows


@dataclass
class RunGroup:
    """A row: runs with the same setting (they differ at most in the replicate keys, e.g. the seed)."""

    label: str
    runs: list[Run]

    @property
    def measured(self) -> list[Run]:
        return [run for run in self.runs if run.metrics is not None]

    def values(self, key: str) -> list[float | None]:
        """`key` of every measured run that has it (null, a non-finite number, stays None)."""
        return [run.metrics[key] for run in self.measured if key in run.metrics]


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(key, pattern) for pattern in patterns)


def distinguishing_keys(
    runs: Sequence[Run], replicate_keys: Iterable[str], ignore_keys: Iterable[str]
) -> list[str]:
    """The override keys whose values differ between `runs`, in command-line order."""
    keys = dict.fromkeys(key for run in runs for key in run.overrides)
    keys = [k for k in keys if not _matches(k, replicate_keys) and not _matches(k, ignore_keys)]
    return [key for key in keys if len({run.value(key) for run in runs}) > 1]


def own_settings(run: Run, replicate_keys: Iterable[str], ignore_keys: Iterable[str]) -> list[str]:
    """A run's overrides as `key=value`, less the replicate and ignored keys."""
    return [
        f"{key}={value}" if value is not None else f"~{key}"
        for key, value in run.overrides.items()
        if not _matches(key, replicate_keys) and not _matches(key, ignore_keys)
    ]


def group_runs(
    runs: Sequence[Run],
    replicate_keys: Iterable[str] = REPLICATE_KEYS,
    ignore_keys: Iterable[str] = IGNORE_KEYS,
) -> list[RunGroup]:
    """One RunGroup per setting, in the order of their first runs, labelled as the module says."""
    replicate_keys, ignore_keys = tuple(replicate_keys), tuple(ignore_keys)
    tasks = list(dict.fromkeys(run.task for run in runs))
    groups: dict[tuple, RunGroup] = {}
    for task in tasks:
        members = [run for run in runs if run.task == task]
        keys = distinguishing_keys(members, replicate_keys, ignore_keys)
        for run in members:
            identity = (task, tuple(run.value(key) for key in keys))
            if identity not in groups:
                pieces = [f"{key}={run.shown_value(key)}" for key in keys if run.value(key) is not None]
                if len(tasks) > 1:
                    label = f"{task}: {' '.join(pieces)}" if pieces else task
                else:
                    # One setting alone: what its command line set, else its name.
                    own = " ".join(own_settings(run, replicate_keys, ignore_keys))
                    label = " ".join(pieces) or own or run.run_name or run.run_dir.name
                groups[identity] = RunGroup(label, [])
            groups[identity].runs.append(run)
    order = {id(run): position for position, run in enumerate(runs)}
    return sorted(groups.values(), key=lambda group: order[id(group.runs[0])])


def common_settings(runs: Sequence[Run], ignore_keys: Iterable[str] = IGNORE_KEYS) -> list[str]:
    """The overrides every run gave with the same value (what the rows share), as `key=value`."""
    if not runs:
        return []
    first = runs[0]
    return [
        f"{key}={value}"
        for key, value in first.overrides.items()
        if value is not None
        and not _matches(key, ignore_keys)
        and all(run.overrides.get(key) == value for run in runs[1:])
    ]


GROUP = " (group)"  # a config-group choice among a run's settings: `trainer (group)` -> ddp_cpu


def all_settings(run: Run, ignore_keys: Iterable[str] = IGNORE_KEYS) -> dict[str, str | None]:
    """Every setting of a run, not only its command line's: each leaf of its config (dotted key ->
    value as text, an interpolation as written) and each config-group choice, less `ignore_keys`."""
    leaves = dotted_leaves(run.config).items()
    settings = {k: _as_text(v) for k, v in leaves if not _matches(k, ignore_keys)}
    for group, choice in run.choices.items():
        if not group.startswith("hydra") and not _matches(group, ignore_keys):
            settings[group + GROUP] = None if choice is None else str(choice)
    return settings


def differing_settings(runs: Sequence[Run], ignore_keys: Iterable[str] = IGNORE_KEYS) -> list[str]:
    """compare.md's lines of every setting (`all_settings`) whose value is not the same in all `runs`:
    each value, or `not set`, with the runs (folder names) that had it."""
    ignore_keys = tuple(ignore_keys)
    settings = [all_settings(run, ignore_keys) for run in runs]
    lines = []
    for key in dict.fromkeys(k for found in settings for k in found):
        by_value: dict[str | None, list[str]] = {}
        for run, found in zip(runs, settings, strict=True):
            by_value.setdefault(found.get(key), []).append(run.run_dir.name)
        if len(by_value) < 2:
            continue
        shown_key = f"`{key[: -len(GROUP)]}`{GROUP}" if key.endswith(GROUP) else f"`{key}`"
        values = [
            f"{'not set' if value is None else f'`{value}`'} ({_some(names)})"
            for value, names in by_value.items()
        ]
        lines.append(f"- {shown_key}: " + "; ".join(values))
    return lines


def _some(names: list[str], shown_at_most: int = 4) -> str:
    more = len(names) - shown_at_most
    return ", ".join(names[:shown_at_most]) + (f" and {more} more" if more > 0 else "")
