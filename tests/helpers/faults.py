"""Faults injected into real runs, as Hydra-configured callbacks:
`+callbacks.fault._target_=tests.helpers.faults.FaultAtStep +callbacks.fault.step=4 +callbacks.fault.fault=sigkill`."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch

FAULTS = ("sigterm", "sigkill", "nan_loss", "nan_weights")


class FaultAtStep(L.Callback):
    """When training has made `step` optimiser steps: SIGTERM or SIGKILL this process, make the next
    batch's coordinate term NaN (`nan_loss`) or the low-rank module's M NaN (`nan_weights`)."""

    def __init__(self, step: int, fault: str) -> None:
        assert fault in FAULTS, fault
        self.step, self.fault = step, fault

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if trainer.global_step != self.step:
            return
        if self.fault in ("sigterm", "sigkill"):
            os.kill(os.getpid(), signal.SIGTERM if self.fault == "sigterm" else signal.SIGKILL)
        elif self.fault == "nan_weights":
            with torch.no_grad():
                pl_module.net.structural_matrix().fill_(float("nan"))
        else:
            objective = pl_module.objective
            forward = objective.forward

            def nan_forward(outputs, target, net):
                terms = forward(outputs, target, net)
                terms["coord_l2"] = terms["coord_l2"] * float("nan")
                terms["loss"] = terms["loss"] * float("nan")
                return terms

            objective.forward = nan_forward
