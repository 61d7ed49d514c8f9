"""Lightning callbacks of the suite."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only

from ..models import describe_network

RUN_CONFIG_KEY = "odn_run_config"


class RunConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config in every checkpoint, so eval can rebuild its data pipeline."""

    def __init__(self, run_config: dict) -> None:
        self.run_config = run_config

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.run_config


def _network_name(net) -> str:
    """The network as tables and reports name it (`variant`: ODN (GM+LM+DM), BRNet, HRNetV2-W18)."""
    return str(getattr(net, "variant", type(net).__name__))


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
            f"network {_network_name(pl_module.net)}: {stats['params'] / 1e6:.2f} M parameters, "
            f"{stats['flops'] / 1e9:.2f} GFLOPs per {self.image_size}x{self.image_size} image"
        )
        for logger in trainer.loggers:
            logger.log_hyperparams({f"model/{k}": v for k, v in stats.items()})


@rank_zero_only
def write_tensorboard_hparams(logger: TensorBoardLogger, hparams: dict[str, Any], metrics: list[str]) -> None:
    """The hyper-parameters into the event file, for TensorBoard's HParams dashboard, with the scalar
    tags it shows beside them. Lightning writes them there only together with a metric value
    (`default_hp_metric`); bools stay bools here, and None, which the plugin cannot hold, is left out."""
    from tensorboard.plugins.hparams import summary_v2

    values = {key: value for key, value in hparams.items() if value is not None}
    experiment = summary_v2.hparams_config_pb(
        [summary_v2.HParam(key) for key in values], [summary_v2.Metric(tag) for tag in metrics]
    )
    writer = logger.experiment._get_file_writer()  # as Lightning's own log_hyperparams does
    writer.add_summary(experiment)
    writer.add_summary(summary_v2.hparams_pb(values))
    writer.flush()


class HyperparametersToLoggers(L.Callback):
    """Gives every logger the run's resolved config as flat hyper-parameters (`run_identity.flat_hyperparameters`),
    with the network's size when NetworkSummary measured it, once per run: CSV's and TensorBoard's
    hparams.yaml, TensorBoard's HParams dashboard, the W&B run's config. `metrics`: the scalar tags
    TensorBoard shows beside them (`val/nme`, `test/<split>/nme`)."""

    def __init__(self, hyperparameters: dict[str, Any], metrics: list[str]) -> None:
        self.hyperparameters = hyperparameters
        self.metrics = metrics
        self.logged = False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_once(trainer)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_once(trainer)

    def log_once(self, trainer: L.Trainer) -> None:
        # TensorBoard keeps the first HParams record of a run: write it once, complete. The network's
        # size is known here, after every callback's setup.
        if self.logged:
            return
        self.logged = True
        hparams = dict(self.hyperparameters)
        for callback in trainer.callbacks:
            if isinstance(callback, NetworkSummary):
                hparams.update({f"model/{k}": v for k, v in callback.stats.items()})
        for logger in trainer.loggers:
            logger.log_hyperparams(hparams)
            if isinstance(logger, TensorBoardLogger):
                write_tensorboard_hparams(logger, hparams, self.metrics)


class SyncDebugGuard(L.Callback):
    """On CUDA: every training step's forward, objective and backward run under
    `torch.cuda.set_sync_debug_mode("error")`, so a host-device synchronisation there (a `.item()`, a
    Python `if` on a tensor, a copy to the CPU) stops the run naming the operation. The optimizer step
    is left out: fp16 AMP's GradScaler reads its inf check on the host by design (16-mixed). Counts
    the guarded steps (`guarded_steps`); on a CPU, where there is no device to wait for, it guards
    nothing and says so (`device`)."""

    def __init__(self) -> None:
        self.guarded_steps = 0
        self.device = "cpu"

    def _guarding(self, trainer: L.Trainer) -> bool:
        return trainer.strategy.root_device.type == "cuda"

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self._guarding(trainer):
            self.device = "cuda"
            torch.cuda.set_sync_debug_mode("error")

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self._guarding(trainer) and torch.cuda.get_sync_debug_mode() != 0:
            torch.cuda.set_sync_debug_mode("default")
            self.guarded_steps += 1

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self._guarding(trainer):
            torch.cuda.set_sync_debug_mode("default")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rank_zero_info(f"sync guard: {self.guarded_steps} training steps guarded on {self.device}")
