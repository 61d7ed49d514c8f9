"""Faults injected into real runs, as Hydra-configured callbacks:
`+callbacks.fault._target_=tests.helpers.faults.FaultAtStep +callbacks.fault.step=4 +callbacks.fault.fault=sigkill`."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch

FAULTS = ("sigterm", "sigkill", "nan_loss", "nan_weights", "nan_gradient", "nan_input")


class FaultAtStep(L.Callback):
    """When training has made `step` optimiser steps: SIGTERM or SIGKILL this process, make the next
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
        if self.fault in ("sigterm", "sigkill"):
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
