"""Compare runs: `python -m odn_lightning.compare RUN_OR_SWEEP ... [key=value ...]` (or `make compare
RUNS="..."`), any run directories and sweep directories together.

A run is a folder holding `.hydra/config.yaml` (what every entry point leaves) or `metrics.json`; a
sweep is a folder of runs, found at any depth. A run is known by what its command line set
(`.hydra/overrides.yaml`), each key read as the value the run took (its group choice in
`.hydra/hydra.yaml`, else its config.yaml), so a key one run set and another left at the same default
does not tell them apart. Rows: runs that differ only in `replicate_keys` (the seed) are one row,
mean ± std over them; a row is labelled by the keys whose values differ between runs (`model=brnet`
against `model=odn`), leaving out `ignore_keys` (paths, workers, logging). Runs of different entry
points (train, ert, eval) are labelled within their own, after its name (`ert`, `train: model=odn`).

Writes `compare.md` (also printed: NME x 10^-2 per test split, as the paper's tables, then AUC and FR at
`threshold` where measured) and `compare_ced_<split>.png` (each row's faces of every seed together,
from predictions.csv) into its own run directory. A run without metrics.json (failed, or not finished)
is shown as such, in its row and in the list of runs below the table.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write_text, shown
from .config import CONFIG_DIR
from .config_checks import ConfigError
from .metrics import threshold_suffix
from .plots import plot_ced
from .reports import PREDICTIONS_FILE, read_predictions
from .runs import run_reporting_user_errors

HYDRA_DIR = ".hydra"
METRICS_FILE = "metrics.json"
COMPARISON_FILE = "compare.md"
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
)
# The collectors' own run directories hold .hydra/ too; they are not runs to compare.
COLLECTOR_TASKS = ("compare", "table4")


# ------------------------------------------------------------------------------------ the runs


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


# ----------------------------------------------------------------------------------- the table


def mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (ddof 1; 0 for one value); None if any is not finite."""
    if not values or any(v is None or not np.isfinite(v) for v in values):
        return None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def stat_cell(values: Sequence[float | None], scale: float, digits: int, measured: int) -> str:
    """A row's cell: "-" not measured; "NaN" not finite (null in metrics.json); one value as is,
    several as "mean ± std", with "(n=k)" where only k of the row's `measured` runs have it."""
    if not values:
        return "-"
    stats = mean_std(values)
    if stats is None:
        text = "NaN"
    elif len(values) == 1:
        text = f"{stats[0] * scale:.{digits}f}"
    else:
        text = f"{stats[0] * scale:.{digits}f} ± {stats[1] * scale:.{digits}f}"
    return text if len(values) == measured else f"{text} (n={len(values)})"


def measured_splits(groups: Sequence[RunGroup]) -> list[str]:
    """The test splits with an NME in some run: each run's data.test_splits order, then any other."""
    runs = [run for group in groups for run in group.measured]
    candidates = [s for run in runs for s in run.test_splits]
    candidates += [k.split("/")[1] for run in runs for k in run.metrics if re.fullmatch(r"test/[^/]+/nme", k)]
    splits = dict.fromkeys(candidates)
    return [s for s in splits if any(f"test/{s}/nme" in run.metrics for run in runs)]


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def comparison_table(groups: Sequence[RunGroup], splits: Sequence[str], threshold: float) -> str:
    """Rows: settings; columns: runs measured (of the row's runs), NME x 10^-2 per split, then AUC and
    FR (%) at `threshold`, the landmark occlusion AUROC, AP and recall at 80% precision (%) per split,
    each where some run measured it."""
    suffix = threshold_suffix(threshold)
    runs = [run for group in groups for run in group.measured]
    columns = [("nme", "{} NME (x10^-2)", 100.0, 2)]
    for name, header, scale, digits in (
        (f"auc_{suffix}", f"{{}} AUC@{threshold:g}", 1.0, 4),
        (f"fr_{suffix}", f"{{}} FR@{threshold:g} (%)", 100.0, 2),
        ("landmark_occlusion_auroc", "{} occlusion AUROC", 1.0, 4),
        ("landmark_occlusion_ap", "{} occlusion AP", 1.0, 4),
        ("landmark_occlusion_recall_at_p80", "{} occlusion recall@80% precision (%)", 100.0, 2),
        ("occlusion_probability_auroc", "{} calibrated occlusion AUROC", 1.0, 4),
        ("occlusion_probability_ap", "{} calibrated occlusion AP", 1.0, 4),
        ("occlusion_probability_recall_at_p80", "{} calibrated recall@80% precision (%)", 100.0, 2),
    ):
        if any(f"test/{s}/{name}" in run.metrics for s in splits for run in runs):
            columns.append((name, header, scale, digits))
    header = ["run", "n"] + [title.format(s) for _, title, _, _ in columns for s in splits]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        measured = len(group.measured)
        count = f"{measured}" if measured == len(group.runs) else f"{measured} of {len(group.runs)}"
        if not measured:
            cells = ["NO METRICS"] * (len(header) - 2)
        else:
            cells = [
                stat_cell(group.values(f"test/{s}/{name}"), scale, digits, measured)
                for name, _, scale, digits in columns
                for s in splits
            ]
        lines.append("| " + " | ".join([_escape(group.label), count, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _where(path: Path) -> str:
    """A run directory as the listing shows it: relative to the working directory when below it."""
    try:
        return shown(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return shown(path)


def runs_listing(groups: Sequence[RunGroup]) -> list[str]:
    lines = []
    for group in groups:
        entries = [
            f"`{_where(run.run_dir)}`" + (f" ({run.problem})" if run.metrics is None else "")
            for run in group.runs
        ]
        lines.append(f"- {_escape(group.label)}: " + ", ".join(entries))
    return lines


def plot_ceds(
    groups: Sequence[RunGroup], splits: Sequence[str], threshold: float, output_dir: Path
) -> list[Path]:
    """compare_ced_<split>.png: per row, the NMEs of its faces in every measured run's predictions.csv."""
    faces: dict[Path, dict[str, np.ndarray]] = {}
    for group in groups:
        for run in group.measured:
            path = run.run_dir / PREDICTIONS_FILE
            if path.is_file():
                faces[run.run_dir] = {split: f["nme"] for split, f in read_predictions(path).items()}
    plots = []
    for split in splits:
        curves = {}
        for group in groups:
            errors = [faces[r.run_dir][split] for r in group.measured if split in faces.get(r.run_dir, {})]
            if errors:
                runs = f" ({len(errors)} runs)" if len(errors) > 1 else ""
                curves[group.label + runs] = np.concatenate(errors)
        if curves:
            path = output_dir / f"compare_ced_{split}.png"
            plots.append(plot_ced(curves, threshold, path, title=f"CED, {split}"))
    return plots


def write_comparison(
    groups: Sequence[RunGroup], output_dir: str | Path, threshold: float = 0.10
) -> tuple[str, list[Path]]:
    """compare.md and the overlaid CED plots into `output_dir`; returns compare.md's text and the plots."""
    output_dir = Path(output_dir)
    splits = measured_splits(groups)
    runs = [run for group in groups for run in group.runs]
    shared = common_settings(runs)
    unmeasured = [run for run in runs if run.metrics is None]
    plots = plot_ceds(groups, splits, threshold, output_dir)
    text = [
        "# Runs compared",
        "",
        f"{len(runs)} runs in {len(groups)} rows; {len(unmeasured)} without metrics. Common to every run: "
        + (" ".join(f"`{s}`" for s in shared) if shared else "no override")
        + ".",
        "",
        comparison_table(groups, splits, threshold),
        "NME normalised as each dataset defines it, x 10^-2 as in the paper; AUC and FR at NME "
        f"{threshold:g}. Occlusion AUROC, AP, recall@80% precision (where measured): how well 1 - P at each "
        "ground-truth point finds the points annotated occluded, as report.md defines them; calibrated: "
        "the same of the calibrated probability the suite outputs. n: runs with "
        "metrics.json (of the row's runs); over several a cell is mean ± standard deviation (n=k: only k of "
        "them measured it). NO METRICS: no run of the row left metrics.json (failed, or not finished).",
        "",
        "Runs:",
        "",
        *runs_listing(groups),
        "",
    ]
    text += [f"![{p.name}]({p.name})" for p in plots]
    atomic_write_text(output_dir / COMPARISON_FILE, "\n".join(text) + "\n")
    return "\n".join(text) + "\n", plots


# -------------------------------------------------------------------------------- command line

# Hydra's flags whose value is the next argument (not a folder to compare).
HYDRA_VALUE_FLAGS = {
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "-c",
    "--cfg",
    "-p",
    "--package",
    "-i",
    "--info",
    "-sc",
    "--shell-completion",
    "--experimental-rerun",
}


def _key_root(override: str) -> str:
    """An override's first key: `hydra.run.dir=x` -> hydra, `hydra/launcher=basic` -> hydra."""
    return re.split(r"[./@]", parse_override(override)[0], maxsplit=1)[0]


class UsageError(ValueError):
    """A command line compare cannot read; exits 2."""


def _hydra_quoted(path: str) -> str:
    """`path` as a quoted Hydra string: quotes (and backslashes before them or at the end) escaped,
    `${` kept literal rather than read as an interpolation."""
    path = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", path)
    path = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, path)
    return "'" + path.replace("${", "\\${") + "'"


def config_keys() -> set[str]:
    """What an override of compare can begin with: conf/compare.yaml's keys and config groups."""
    config = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR, "compare.yaml")))
    groups = [next(iter(item)) for item in config.pop("defaults", []) if isinstance(item, dict)]
    return set(config) | set(groups)


def folders_as_override(arguments: Sequence[str]) -> list[str]:
    """Hydra reads `key=value` overrides only: the arguments that name folders become one `runs=[...]`
    override, each quoted (a job folder's name may hold `=` and `,`). An argument is an override where
    it begins with one of compare's keys (`threshold=`, `hydra.run.dir=`, `+paths.log_dir=`) and is
    not a folder; Hydra's flags pass unchanged."""
    keys = config_keys()
    kept: list[str] = []
    folders: list[str] = []
    takes_value = False
    for argument in arguments:
        if takes_value:
            kept.append(argument)
            takes_value = False
        elif argument.startswith("-"):
            kept.append(argument)
            takes_value = argument in HYDRA_VALUE_FLAGS
        elif "=" in argument and not Path(argument).is_dir() and _key_root(argument) in keys:
            kept.append(argument)
        else:
            folders.append(argument)
    if not folders:
        return kept
    if any(_key_root(a) == "runs" for a in kept if not a.startswith("-")):
        raise UsageError(
            f"folders given both as arguments ({', '.join(folders)}) and as runs=[...]: use one of the two"
        )
    return [*kept, "runs=[" + ",".join(_hydra_quoted(f) for f in folders) + "]"]


def main_task(cfg: DictConfig) -> str:
    if not cfg.threshold > 0:
        raise ConfigError(f"threshold={cfg.threshold}: the NME threshold of AUC, FR and the CEDs must be > 0")
    folders = [str(f) for f in cfg.runs]
    if not folders:
        newest = newest_sweep(cfg.paths.log_dir)
        if newest is None:
            raise FileNotFoundError(
                f"no runs named and no sweep under {shown(Path(cfg.paths.log_dir, 'train', 'multiruns'))}: "
                'python -m odn_lightning.compare RUN_OR_SWEEP ... (make compare RUNS="...")'
            )
        folders = [str(newest)]
        print(f"comparing the newest sweep, {shown(newest)}")
    runs = find_runs(folders)
    groups = group_runs(runs, cfg.replicate_keys, cfg.ignore_keys)
    output_dir = Path(cfg.paths.output_dir)
    text, plots = write_comparison(groups, output_dir, cfg.threshold)
    print(text)
    print(f"written: {shown(output_dir / COMPARISON_FILE)}" + "".join(f", {shown(p)}" for p in plots))
    return text


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="compare")
def hydra_main(cfg: DictConfig) -> None:
    run_reporting_user_errors(main_task, cfg)


def main() -> None:
    try:
        sys.argv[1:] = folders_as_override(sys.argv[1:])
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    hydra_main()


if __name__ == "__main__":
    main()
