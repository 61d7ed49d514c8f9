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

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write_text, shown
from .config import CONFIG_DIR
from .config_checks import ConfigError
from .metrics import threshold_suffix
from .plots import plot_ced
from .recorded_runs import (
    RunGroup,
    common_settings,
    find_runs,
    group_runs,
    newest_sweep,
    parse_override,
)
from .report_files import PREDICTIONS_FILE, read_predictions
from .runs import run_reporting_user_errors

COMPARISON_FILE = "compare.md"


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
