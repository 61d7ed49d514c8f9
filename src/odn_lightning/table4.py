"""Table 4 of the paper from an ablation sweep: `python -m odn_lightning.table4 [sweep_dir=DIR]`.

Reads each job of a multirun sweep (`make ablation`): its variant (its `model=` choice, from
`.hydra/hydra.yaml`; else the `run_name` of `.hydra/config.yaml`), its numbers from `metrics.json`, its faces from `predictions.csv`. Writes
`table4.md` (NME x 10^-2 per test split, as the paper's Table 4, plus AUC and FR at the largest
threshold) and `table4_ced_<split>.png` (the variants' CED curves overlaid) into the sweep directory,
and prints the table. A variant whose job failed, or that has no job, is a row saying so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_write_text
from .config import CONFIG_DIR
from .metrics import threshold_suffix
from .reports import PREDICTIONS_FILE, overlay_ced
from .runs import run_reporting_user_errors

# Table 4's rows, in the paper's order: the model choice (conf/model/<name>.yaml) -> the paper's label.
TABLE4_ROWS = {
    # The classical anchor, not in the paper's Table 4: dlib's ERT (`python -m odn_lightning.ert`,
    # run into the sweep as its `ert` folder by `make ablation`).
    "ert": "ERT (dlib, Kazemi & Sullivan 2014)",
    "brnet": "BRNet",
    # A control, not in the paper: BRNet with the module rows' readout (conv_pool), so that a module
    # row's difference from BRNet is not its readout's.
    "brnet_conv_pool": "BRNet, conv_pool readout (control)",
    "gm_dm": "+GM+DM",
    "dm_lm": "+DM+LM",
    "gm_lm": "+GM+LM",
    "odn_no_l1": "GM+LM+DM w/o L1",
    "odn": "ODN (GM+LM+DM)",
}


@dataclass
class SweepRun:
    variant: str
    status: str  # "done", "failed" (a job without metrics.json) or "missing" (no job)
    run_dir: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    splits: list[str] = field(default_factory=list)


def latest_sweep(log_dir: str | Path) -> Path:
    """The newest multirun of the training entry point under `log_dir`."""
    sweeps = sorted(Path(log_dir, "train", "multiruns").glob("*/"), key=lambda p: p.name)
    if not sweeps:
        raise FileNotFoundError(
            f"no sweep under {Path(log_dir, 'train', 'multiruns')}: run `make ablation DATA=synthetic` first, "
            "or pass sweep_dir=DIR"
        )
    return sweeps[-1]


def run_variant(run_dir: Path, config: DictConfig) -> str:
    """A job's variant: its model choice as Hydra recorded it, else its `run_name`, else its folder.

    The choice is read from `.hydra/hydra.yaml` rather than resolved from `run_name`: the saved config
    keeps `${hydra:...}` interpolations, which only the job's own process can resolve."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if hydra_file.is_file():
        choice = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices.model")
        if choice:
            return str(choice)
    return OmegaConf.select(config, "run_name") or run_dir.name


def read_sweep(sweep_dir: str | Path, variants: Sequence[str]) -> list[SweepRun]:
    """One SweepRun per variant, in `variants` order, then any other variant the sweep holds."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir} does not exist")
    found: dict[str, SweepRun] = {}
    for config_file in sorted(sweep_dir.glob("*/.hydra/config.yaml")):
        run_dir = config_file.parent.parent
        config = OmegaConf.load(config_file)
        variant = run_variant(run_dir, config)
        metrics_file = run_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        test_splits = list(OmegaConf.select(config, "data.test_splits") or [])
        done = any(key.startswith("test/") for key in metrics)
        found[variant] = SweepRun(variant, "done" if done else "failed", run_dir, metrics, test_splits)
    runs = [found.pop(v, SweepRun(v, "missing")) for v in variants]
    return runs + list(found.values())


def _cell(run: SweepRun, split: str, key: str, scale: float, digits: int) -> str:
    """A number not measured (no key) is "-"; a non-finite one (null in metrics.json) is "NaN"."""
    key = f"test/{split}/{key}"
    if key not in run.metrics:
        return "-"
    number = run.metrics[key]
    return "NaN" if number is None or number != number else f"{number * scale:.{digits}f}"


def _size(run: SweepRun, key: str, scale: float, digits: int) -> str:
    value = run.metrics.get(key)
    return "-" if value is None else f"{value * scale:.{digits}f}"


def table_markdown(runs: Sequence[SweepRun], splits: Sequence[str], threshold: float) -> str:
    """Rows: variants; columns: NME x 10^-2 per split, then AUC and FR (%) at `threshold` per split,
    then the network's parameters and cost per image (`model/params`, `model/flops` of metrics.json)."""
    sizes = {r.metrics.get("model/image_size") for r in runs if r.status == "done"} - {None}
    image_size = int(sizes.pop()) if len(sizes) == 1 else None
    suffix = threshold_suffix(threshold)
    header = ["Method"] + [f"{s} NME (x10^-2)" for s in splits]
    header += [f"{s} AUC@{threshold:g}" for s in splits] + [f"{s} FR@{threshold:g} (%)" for s in splits]
    header += ["params (M)", f"GFLOPs at {image_size} px" if image_size else "GFLOPs", "run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in runs:
        label = TABLE4_ROWS.get(run.variant, run.variant)
        if run.status != "done":
            where = f"`{run.run_dir}`" if run.run_dir else "no job in this sweep"
            cells = [run.status.upper()] * (3 * len(splits) + 2)
            lines.append("| " + " | ".join([label, *cells, where]) + " |")
            continue

        cells = [_cell(run, s, "nme", 100, 2) for s in splits]
        cells += [_cell(run, s, f"auc_{suffix}", 1, 4) for s in splits]
        cells += [_cell(run, s, f"fr_{suffix}", 100, 2) for s in splits]
        cells += [_size(run, "model/params", 1e-6, 2), _size(run, "model/flops", 1e-9, 2)]
        lines.append("| " + " | ".join([label, *cells, f"`{run.run_dir.name}`"]) + " |")
    return "\n".join(lines) + "\n"


def collect(
    sweep_dir: str | Path, variants: Sequence[str] = tuple(TABLE4_ROWS), threshold: float = 0.10
) -> tuple[str, list[Path]]:
    """Writes table4.md and the overlaid CED plots into the sweep; returns the table and the plots."""
    sweep_dir = Path(sweep_dir)
    runs = read_sweep(sweep_dir, variants)
    splits = list(dict.fromkeys(s for run in runs if run.status == "done" for s in run.splits))
    table = table_markdown(runs, splits, threshold)
    done = {TABLE4_ROWS.get(r.variant, r.variant): r.run_dir for r in runs if r.status == "done"}
    with_predictions = {label: d for label, d in done.items() if (d / PREDICTIONS_FILE).is_file()}
    plots = [
        overlay_ced(
            with_predictions, split, threshold, sweep_dir / f"table4_ced_{split}.png", f"Table 4, {split}"
        )
        for split in splits
        if with_predictions
    ]
    counts = {status: sum(r.status == status for r in runs) for status in ("done", "failed", "missing")}
    text = [
        "# Table 4 (ablation)",
        "",
        f"Sweep: `{sweep_dir}`. Variants done {counts['done']}, failed {counts['failed']}, missing "
        f"{counts['missing']}. NME normalised as the dataset defines it, x 10^-2 as in the paper.",
        "",
        table,
    ]
    text += [f"![{p.name}]({p.name})" for p in plots]
    atomic_write_text(sweep_dir / "table4.md", "\n".join(text) + "\n")
    return table, plots


def main_task(cfg: DictConfig) -> str:
    sweep_dir = Path(cfg.sweep_dir) if cfg.sweep_dir else latest_sweep(cfg.paths.log_dir)
    table, plots = collect(sweep_dir, list(cfg.variants), cfg.threshold)
    print(table)
    print(f"written: {sweep_dir / 'table4.md'}" + "".join(f", {p}" for p in plots))
    return table


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="table4")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(main_task, cfg)


if __name__ == "__main__":
    main()
