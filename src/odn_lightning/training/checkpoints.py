"""Checkpoints that are data and survive faults: written atomically, read weights-only, always current.

- `AtomicCheckpointIO` (a Lightning CheckpointIO plugin): every checkpoint goes to a temporary file
  that is renamed over the final name once complete, so a full disk or a kill mid-write never leaves
  a truncated `last.ckpt`; a write that fails stops the run naming the file. Reading is
  `torch.load(weights_only=True)`: tensors and plain containers, never pickled objects or code.
- `RunCheckpoint` (Lightning's ModelCheckpoint): `last.ckpt` is rewritten after every epoch (Lightning
  2.6 rewrites it only when a best checkpoint is saved), optionally every N steps, and on SIGTERM.
- `resolve_ckpt_path`: `ckpt_path=last` finds the run to continue.
"""

from __future__ import annotations

import os
import pickletools
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..config import dotted_leaves
from .strategies import WorkersStoppedBySIGTERM

LAST = "last"
LAST_FILE = "last.ckpt"
CHECKPOINT_DIR = "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe, or of another model; one line."""


class CheckpointWriteError(OSError):
    """A checkpoint that could not be written (permissions, full disk): the run stops naming it."""


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint's contents, read weights-only; anything else is refused in one line."""
    checkpoint = read_weights_only(path, map_location)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"ckpt_path={path} is not a Lightning checkpoint (it holds no state_dict)")
    return checkpoint


def _pickles_objects(path: Path) -> bool:
    """Whether a (non-zip) file is a pickle that builds Python objects, read without running it."""
    if zipfile.is_zipfile(path):
        return False
    try:
        opcodes = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    except Exception:  # not a pickle at all
        return False
    return bool(opcodes & {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE"})


def read_weights_only(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """torch.load(weights_only=True): tensors and plain containers, never pickled objects; `mmap`: the
    tensors are read only when used (a look at a checkpoint's other entries costs no copy of them)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path} does not exist; pass the .ckpt file of a training run")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Unsupported global" in str(err) or _pickles_objects(path):
            raise CheckpointError(
                f"ckpt_path={path} holds pickled Python objects, which are never loaded (they can run "
                "code); only checkpoints written by odn-lightning (tensors and plain values) are read"
            ) from err
        raise CheckpointError(
            f"ckpt_path={path} is not a readable checkpoint (truncated, empty or another kind of "
            f"file: {reason[:200]}); use another .ckpt of the run"
        ) from err
    return checkpoint


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file in the same folder, fsync, then rename; torch.load weights-only."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
            ) as f:
                temporary = Path(f.name)
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temporary, 0o666 & ~_umask())
            os.replace(temporary, path)
        except OSError as err:
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            raise CheckpointWriteError(
                f"{path}: cannot write the checkpoint ({err.strerror or err}); free disk space or make "
                "the folder writable (or choose another paths.log_dir), then resume with ckpt_path=last"
            ) from err

    def load_checkpoint(
        self, path: str | Path, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # Also Lightning's own files, e.g. the weights a spawned DDP process hands back.
        return read_weights_only(path, map_location if map_location is not None else "cpu")


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose `last.ckpt` is always the newest state of the run.

    Args (beyond ModelCheckpoint's):
        last_every_n_train_steps: also rewrite `last.ckpt` every N optimiser steps (what a SIGKILL
            can lose); null: at the end of each epoch only.
    """

    def __init__(self, *args: Any, last_every_n_train_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_every_n_train_steps = last_every_n_train_steps
        self._last_saved_step: int | None = None

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def _save_last_if_stale(self, trainer: L.Trainer) -> None:
        if self.save_last and self._last_saved_step != trainer.global_step:
            if not self._should_skip_saving_checkpoint(trainer):
                self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args)
        every = self.last_every_n_train_steps
        # Not at an epoch's last batch: the epoch-end save comes next, with the best checkpoint (a save
        # at this step would make Lightning skip that one).
        last_batch = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if every and trainer.global_step % every == 0 and not last_batch:
            self._save_last_if_stale(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # Where Lightning saves at the epoch's end instead, `last.ckpt` follows it there.
        if not trainer.sanity_checking and not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_stale(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._save_last_if_stale(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, WorkersStoppedBySIGTERM):
            # DDP's launching process: the workers saved it; the model here never trained.
            self.last_model_path = exception.last_checkpoint
            return
        if isinstance(exception, SIGTERMException) and self.save_last:
            # Preempted: keep the batches of the epoch under way; the run exits non-zero after this.
            self._save_last_if_stale(trainer)
            rank_zero_info(f"SIGTERM at step {trainer.global_step}: saved {self.last_model_path}")
            return
        super().on_exception(trainer, pl_module, exception)


def last_checkpoints(log_dir: str | Path) -> list[Path]:
    """Every run's `checkpoints/last.ckpt` under `log_dir` (runs and multiruns), newest first."""
    found = [p for p in Path(log_dir).glob(f"**/{CHECKPOINT_DIR}/{LAST_FILE}") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def resolve_ckpt_path(
    value: str | None,
    output_dir: str | Path,
    log_dir: str | Path,
    differences_from: Callable[[Path], list[str]] | None = None,
) -> Path | None:
    """`ckpt_path` as a file: `last` is this run directory's `last.ckpt` when it has one (a fixed
    hydra.run.dir, a requeued job), else the newest `last.ckpt` under `log_dir` whose run
    `differences_from` finds nothing against (every one without it). None of them: one line naming the
    newest, what differs, and how to continue it."""
    if value in (None, ""):
        return None
    if str(value) != LAST:
        return Path(value)
    own = Path(output_dir) / CHECKPOINT_DIR / LAST_FILE
    if own.is_file():
        return own
    found = last_checkpoints(log_dir)
    if not found:
        raise CheckpointError(
            f"ckpt_path=last: no {CHECKPOINT_DIR}/{LAST_FILE} under {log_dir}; nothing to resume"
        )
    if differences_from is None:
        return found[0]
    newest_changes = None
    for path in found:
        changes = differences_from(path)
        if not changes:
            return path
        newest_changes = newest_changes or changes
    raise CheckpointError(
        f"ckpt_path=last: no run under {log_dir} has this command's settings; the newest, "
        f"{run_directory(found[0]) or found[0]}, differs ({'; '.join(newest_changes[:4])}); to continue it, "
        f"run the command that started it with ckpt_path={found[0]}, or start a new run without ckpt_path"
    )


def run_directory(ckpt_path: Path) -> Path | None:
    """The run directory a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), else None."""
    return ckpt_path.parent.parent if ckpt_path.parent.name == CHECKPOINT_DIR else None


def differences(stored: Mapping, current: Mapping, keys: list[str]) -> list[str]:
    """`key: stored -> current` for each setting under the dotted `keys` that differs between two
    plain configs."""

    def leaves(config: Mapping, key: str) -> dict[str, Any]:
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return dotted_leaves(node, key)

    found = []
    for key in keys:
        old, new = leaves(stored, key), leaves(current, key)
        found += [
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in dict.fromkeys([*old, *new])
            if old.get(k) != new.get(k)
        ]
    return found
