"""Lightning's messages that do not apply to the suite's runs, silenced where Lightning emits them, by
their text: a run prints its summary table, its paths and what does apply. Called by every entry point
(`runs.apply_extras`) and in each spawned DDP worker (`strategies`), which starts without the filters."""

from __future__ import annotations

import logging
import warnings

NOT_APPLICABLE_WARNINGS = (
    # Lightning's own call of a torch API that torch deprecated: nothing a user can change.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # eval tests a checkpoint under its own callbacks (the report), never the training run's.
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint",
    # The suite's sampler makes a resume mid-epoch exact (data/sampler.py); resume says so itself.
    r"You're resuming from a checkpoint that ended before the epoch ended",
    # Under DDP: the validation and test figures are torchmetrics' and the occlusion output's, reduced
    # over every process in compute(); what Lightning would sync is whole already (tested: DDP's
    # numbers equal one process's).
    r"It is recommended to use `self.log\('(val|test)/",
    # DDP's reducer compares a gradient's strides with its bucket's literally; for a 1x1 kernel
    # (channels-last weights) the two differ only on the size-1 dimensions: the same bytes in the same
    # order. Any other mismatch is a real one and is shown.
    # The suite's test stage scores each face once over the processes (its sampler and metrics).
    r"Using `DistributedSampler` with the dataloaders\. During `trainer\.test\(\)`",
    r"Grad strides do not match bucket view strides[\s\S]*grad\.sizes\(\) = \[\d+, \d+, 1, 1\]",
)
NOT_APPLICABLE_LINES = (
    "💡 Tip:",  # advertisements for Lightning's cloud packages
    "TPU available:",  # the suite runs on CPUs and GPUs
    "Loading `train_dataloader` to estimate number of stepping batches",
    "Initializing distributed:",  # one line per process and stage; the registered-processes box stays
)
# Where Lightning logs them: its rank-zero messages, and each process's distributed start.
LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.distributed",
)


class _NotApplicable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(NOT_APPLICABLE_LINES)


def quiet_lightning() -> None:
    """Silence NOT_APPLICABLE_WARNINGS and NOT_APPLICABLE_LINES where Lightning emits them."""
    for message in NOT_APPLICABLE_WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{message}")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NotApplicable) for f in logger.filters):
            logger.addFilter(_NotApplicable())
