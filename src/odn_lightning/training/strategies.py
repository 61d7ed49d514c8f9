"""Lightning strategies of the suite (conf/trainer/ddp_cpu.yaml names the one here)."""

from __future__ import annotations

import atexit
from typing import Any

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy


def destroy_process_group() -> None:
    """Destroys this process's default process group, if it has one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class SpawnDDPStrategy(DDPStrategy):
    """Lightning's `ddp_spawn` (DDP in processes started by `spawn`), whose worker processes destroy
    their process group as they exit.

    Lightning destroys the process group at exit only for NCCL (`_init_dist_connection` in
    lightning/fabric/utilities/distributed.py, Lightning-AI/pytorch-lightning#19931). A gloo worker
    exits with its process group alive, and its C++ threads are then torn down after the interpreter
    has finalised: now and then one is still joinable and the worker dies with "terminate called
    without an active exception" (SIGABRT), which the launcher reports as `ProcessExitedException:
    process 1 terminated with signal SIGABRT` (pytorch/pytorch#190489; an atexit clean-up in torch
    itself, pytorch/pytorch#179291, was abandoned). So each worker destroys it at exit itself.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(start_method="spawn", **kwargs)

    def setup_distributed(self) -> None:
        super().setup_distributed()
        # In the worker, once its process group exists. At exit rather than in `teardown`: after the
        # launcher has collected the worker's results, while Python is still whole. Local to the
        # worker for gloo: it neither waits for nor needs the other process.
        atexit.unregister(destroy_process_group)  # once per process, though set up per stage
        atexit.register(destroy_process_group)
