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

Writes `compare.md` and `compare_ced_<split>.png` into its own run directory and prints the table
(`evaluation.comparison` says what they hold).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .atomic import shown
from .config import CONFIG_DIR
from .config_checks import ConfigError
from .evaluation.comparison import COMPARISON_FILE, write_comparison
from .evaluation.recorded_runs import find_runs, group_runs, newest_sweep, parse_override
from .runs import run_reporting_user_errors

# Hydra's flags whose value is the next argument (not a folder to compare).
HYDRA_VALUE_FLAGS = {
    *("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-c", "--cfg"),
    *("-p", "--package", "-i", "--info", "-sc", "--shell-completion", "--experimental-rerun"),
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
