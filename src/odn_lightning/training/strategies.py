"""Lightning strategies of the suite (conf/trainer/ddp_cpu.yaml names the one here).

`SpawnDDPStrategy` is Lightning's `ddp_spawn` made to stop cleanly. On SIGTERM (a scheduler preempting
the job), sent to the launching process, to the workers or to all of them, the workers stop together
before the same batch, save `last.ckpt` as a single process does, and exit; the launching process
waits for them and raises SIGTERMException, so `train` exits 143 with its one line. Lightning alone
left the workers training as orphans when the launching process got SIGTERM, and could hang when
every process got it (its handler broadcasts from inside the signal handler, out of step with the
collectives under way).
"""

from __future__ import annotations

import atexit
import signal
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from lightning.pytorch.trainer.call import _interrupt
from lightning.pytorch.utilities.exceptions import SIGTERMException

from .quiet import quiet_lightning


def destroy_process_group() -> None:
    """Destroys this process's default process group, if it has one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class StoppedWorkers(NamedTuple):
    """Where rank 0 stopped (SIGTERM) or finished, and its last.ckpt, for the launching process."""

    epoch: int
    step: int
    last_checkpoint: str
    trainer_results: None = None  # read by Lightning's launcher in place of a finished run's results


class WorkersStoppedBySIGTERM(SIGTERMException):
    """Raised in the launching process: SIGTERM stopped the DDP workers, which saved `last_checkpoint`
    (the model of this process never trained, so nothing here saves)."""

    def __init__(self, epoch: int, step: int, last_checkpoint: str) -> None:
        super().__init__(f"SIGTERM stopped the workers at epoch {epoch}, step {step}")
        self.epoch, self.step, self.last_checkpoint = epoch, step, last_checkpoint


class StopOnSIGTERMLauncher(_MultiProcessingLauncher):
    """Lightning's launcher for spawned workers, which passes SIGTERM on to them and waits for them."""

    def launch(self, function: Any, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        self.stopped: StoppedWorkers | None = None
        self.finished: StoppedWorkers | None = None
        self.sigterm_received = False

        def pass_on(signum: int, frame: Any) -> None:
            self.sigterm_received = True
            self.kill(signum)  # to every live worker; Lightning's launcher then joins them

        previous = signal.signal(signal.SIGTERM, pass_on)
        try:
            results = super().launch(function, *args, trainer=trainer, **kwargs)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if self.stopped is not None:
            raise WorkersStoppedBySIGTERM(*self.stopped[:3])
        if self.sigterm_received:  # after the workers' last training step: their run is whole
            finished = self.finished or StoppedWorkers(trainer.current_epoch, trainer.global_step, "")
            raise WorkersStoppedBySIGTERM(*finished[:3])
        return results

    def get_extra_results(self, trainer: Any) -> dict[str, Any]:
        # Where the workers ended and their last.ckpt: Lightning hands back only the best checkpoint's
        # path, so run.json and the summary of a DDP run named no last checkpoint.
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
        return super().get_extra_results(trainer) | {
            "finished": (trainer.current_epoch, trainer.global_step, last)
        }

    def update_main_process_results(self, trainer: Any, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        self.finished = StoppedWorkers(*extra["finished"])
        if self.finished.last_checkpoint and hasattr(trainer.checkpoint_callback, "last_model_path"):
            trainer.checkpoint_callback.last_model_path = self.finished.last_checkpoint

    def _wrapping_function(self, process_idx: int, trainer: Any, *args: Any, **kwargs: Any) -> None:
        quiet_lightning()  # a spawned worker starts without the launching process's filters
        return_queue = args[3]
        try:
            super()._wrapping_function(process_idx, trainer, *args, **kwargs)
        except SIGTERMException as stop:
            # Lightning runs the on_exception hooks (the checkpoint callback saves last.ckpt there) in
            # the launching process only, whose model never trained: here they run in every worker,
            # at the same step (the save waits on all of them), and the worker exits cleanly.
            _interrupt(trainer, stop)
            trainer._teardown()
            if process_idx == 0:
                last = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
                return_queue.put(StoppedWorkers(trainer.current_epoch, trainer.global_step, last))

    def _recover_results_in_main_process(self, worker_output: Any, trainer: Any) -> None:
        if isinstance(worker_output, StoppedWorkers):
            self.stopped = worker_output
            return
        super()._recover_results_in_main_process(worker_output, trainer)


class SpawnDDPStrategy(DDPStrategy):
    """Lightning's `ddp_spawn` (DDP in processes started by `spawn`) that stops cleanly on SIGTERM (see
    the module's docstring) and whose worker processes destroy their process group as they exit.

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
        self.stop_requested = False

    def _configure_launcher(self) -> None:
        self._launcher = StopOnSIGTERMLauncher(self, start_method=self._start_method)

    def setup_distributed(self) -> None:
        super().setup_distributed()
        # In the worker, once its process group exists. At exit rather than in `teardown`: after the
        # launcher has collected the worker's results, while Python is still whole. Local to the
        # worker for gloo: it neither waits for nor needs the other process.
        atexit.unregister(destroy_process_group)  # once per process, though set up per stage
        atexit.register(destroy_process_group)

    def _note_sigterm(self, signum: int, frame: Any) -> None:
        # Only noted: the workers agree on it at the next training batch (a collective inside a
        # signal handler would run out of step with the ones under way).
        self.stop_requested = True

    def _take_sigterm(self) -> None:
        # In the worker, after Lightning's trainer has installed its own SIGTERM handler for the stage.
        signal.signal(signal.SIGTERM, self._note_sigterm)

    def on_train_start(self) -> None:
        super().on_train_start()
        self._take_sigterm()

    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._take_sigterm()

    def on_test_start(self) -> None:
        super().on_test_start()
        self._take_sigterm()

    def on_predict_start(self) -> None:
        super().on_predict_start()
        self._take_sigterm()

    def on_train_batch_start(self, batch: Any, batch_idx: int, *args: Any) -> None:
        super().on_train_batch_start(batch, batch_idx, *args)
        # Every worker at the same point of every step: a SIGTERM that reached any of them stops all,
        # before this batch (one small all-reduce per step, on gloo a CPU one).
        requested = torch.tensor([int(self.stop_requested)], device=self.root_device)
        dist.all_reduce(requested, op=dist.ReduceOp.MAX)
        if requested.item():
            raise SIGTERMException
