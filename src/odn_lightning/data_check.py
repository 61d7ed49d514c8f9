"""Prepare and check a dataset: `python -m odn_lightning.data_check data=NAME [data.root=PATH]`.

Generates the synthetic faces if needed, reads every split the config defines and prints its size.
"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from .config import CONFIG_DIR
from .runs import run_reporting_user_errors


def check(cfg: DictConfig) -> dict[str, int]:
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    counts = {split: len(datamodule.records(split)) for split in cfg.data.splits}
    table = Table(title=f"{cfg.data.name} at {cfg.data.root}")
    table.add_column("split")
    table.add_column("faces", justify="right")
    table.add_column("folders")
    for split, count in counts.items():
        table.add_row(split, str(count), ", ".join(cfg.data.splits[split]))
    Console().print(table)
    return counts


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="data_check")
def main(cfg: DictConfig) -> None:
    run_reporting_user_errors(check, cfg)


if __name__ == "__main__":
    main()
