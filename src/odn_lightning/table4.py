"""Table 4 of the paper from an ablation sweep: `python -m odn_lightning.table4 [sweep_dir=DIR]`.

Writes `table4.md` and `table4_ced_<split>.png` into the sweep directory and prints the table;
`evaluation.ablation_table` says how rows are named and what each cell is.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from .config import CONFIG_DIR
from .evaluation.ablation_table import collect, latest_sweep
from .runs import run_reporting_user_errors


def main_task(cfg: DictConfig) -> str:
    sweep_dir = Path(cfg.sweep_dir) if cfg.sweep_dir else latest_sweep(cfg.paths.log_dir)
    variants = None if cfg.variants is None else list(cfg.variants)
    table, plots = collect(sweep_dir, variants, cfg.threshold, list(cfg.paired))
    print(table)
    print(f"written: {sweep_dir / 'table4.md'}" + "".join(f", {p}" for p in plots))
    return table


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="table4")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(main_task, cfg)


if __name__ == "__main__":
    main()
