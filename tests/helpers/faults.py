"""Faults injected into real runs, as Hydra-configured callbacks:
`+callbacks.fault._target_=tests.helpers.faults.FaultAtStep +callbacks.fault.step=4 +callbacks.fault.fault=sigkill`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L
import torch

FAULTS = (
    "sigterm",
    "sigkill",
    "sigterm_launcher",
    "sigterm_every",
    "nan_loss",
    "nan_weights",
    "nan_gradient",
    "nan_input",
)


class FaultAtStep(L.Callback):
    """When training has made `step` optimiser steps: SIGTERM or SIGKILL this process; under DDP, SIGTERM
    the launching process (`sigterm_launcher`) or it and every worker (`sigterm_every`); make the next
    batch's coordinate term NaN (`nan_loss`), the low-rank module's M NaN (`nan_weights`), the final
    FC layer's gradient NaN (`nan_gradient`) or the next batch's first pixel NaN (`nan_input`)."""

    def __init__(self, step: int, fault: str) -> None:
        assert fault in FAULTS, fault
        self.step, self.fault = step, fault
        self.poison_next_batch = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, *args) -> None:
        if self.poison_next_batch:
            batch["image"][0, 0, 0, 0] = float("nan")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.global_step != self.step:
            return
        if self.fault in ("sigterm_launcher", "sigterm_every"):
            self.sigterm_ddp(trainer)
        elif self.fault in ("sigterm", "sigkill"):
            os.kill(os.getpid(), signal.SIGTERM if self.fault == "sigterm" else signal.SIGKILL)
        elif self.fault == "nan_gradient":
            pl_module.net.fc.weight.register_hook(lambda grad: grad * float("nan"))
        elif self.fault == "nan_input":
            self.poison_next_batch = True
        elif self.fault == "nan_weights":
            with torch.no_grad():
                pl_module.net.structural_matrix().fill_(float("nan"))
        else:
            objective = pl_module.objective
            forward = objective.forward

            def nan_forward(outputs, target, net, batch=None):
                terms = forward(outputs, target, net, batch)
                terms["coord_l2"] = terms["coord_l2"] * float("nan")
                terms["loss"] = terms["loss"] * float("nan")
                return terms

            objective.forward = nan_forward

    def sigterm_ddp(self, trainer: L.Trainer) -> None:
        """Each worker writes its pid into the run's folder (`worker_pid_<rank>`); rank 0 writes when it
        sends the signal (`sigterm_sent_at`) and waits until the signal has reached it, so that the
        workers stop before the next batch, whatever the delivery's delay."""
        folder = Path(trainer.default_root_dir)
        (folder / f"worker_pid_{trainer.global_rank}").write_text(str(os.getpid()))
        if self.fault == "sigterm_every":
            os.kill(os.getpid(), signal.SIGTERM)
        if trainer.global_rank != 0:
            return
        (folder / "sigterm_sent_at").write_text(repr(time.time()))
        os.kill(os.getppid(), signal.SIGTERM)
        deadline = time.monotonic() + 30
        while not trainer.strategy.stop_requested and time.monotonic() < deadline:
            time.sleep(0.01)
