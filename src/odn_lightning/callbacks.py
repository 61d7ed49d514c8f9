"""Lightning callbacks of the suite."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from .models import describe_network

RUN_CONFIG_KEY = "odn_run_config"


class RunConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config in every checkpoint, so eval can rebuild its data pipeline."""

    def __init__(self, run_config: dict) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.run_config


class NetworkSummary(L.Callback):
    """Logs the parameter count and FLOPs per image of the network at the start of a run."""

    def __init__(self, image_size: int) -> None:
        self.image_size = image_size
        self.logged = False
        self.stats: dict[str, int] = {}  # for metrics.json: model/params, model/flops, ...

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.logged:  # fit, then test: once is enough
            return
        self.logged = True

        stats = describe_network(pl_module.net, self.image_size)
        self.stats = stats
        rank_zero_info(
            f"network {type(pl_module.net).__name__}: {stats['params'] / 1e6:.2f} M parameters, "
            f"{stats['flops'] / 1e9:.2f} GFLOPs per {self.image_size}x{self.image_size} image"
        )
        for logger in trainer.loggers:
            logger.log_hyperparams({f"model/{k}": v for k, v in stats.items()})
