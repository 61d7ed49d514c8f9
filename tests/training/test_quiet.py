"""training.quiet: Lightning's messages that do not apply are silenced by their text; the rest stay."""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from odn_lightning.training.quiet import quiet_lightning


def test_what_does_not_apply_is_silenced_and_the_rest_is_kept(caplog):
    synced = "It is recommended to use `self.log('{}', ..., sync_dist=True)` when logging on epoch level"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        quiet_lightning()  # twice: once is what counts
        rank_zero_warn(synced.format("val/nme"))
        rank_zero_warn(synced.format("test/common/auc_08"))
        rank_zero_warn(synced.format("train/loss"))  # a per-process value: it does apply
        rank_zero_warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...")
    assert [str(w.message) for w in caught] == [synced.format("train/loss")]
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing litlogger")
        rank_zero_info("TPU available: False, using: 0 TPU cores")
        rank_zero_info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    assert len(logging.getLogger("lightning.pytorch.utilities.rank_zero").filters) == 1


def test_ddps_stride_notice_is_silenced_for_1x1_kernels_only():
    """DDP's reducer compares a gradient's strides with its bucket's literally; for a 1x1 kernel the
    channels-last and default strides differ only on the size-1 dimensions, the same bytes in the same
    order, so the notice does not apply there. Any other layout mismatch is a real one and stays."""
    notice = (
        "Grad strides do not match bucket view strides. This may indicate grad was not created according"
        " to the gradient layout contract, or that the param's strides changed since DDP was constructed."
        "  This is not an error, but may impair performance.\n"
        "grad.sizes() = [{0}], strides() = [{1}]\n"
        "bucket_view.sizes() = [{0}], strides() = [{2}] (Triggered internally at reducer.cpp:335.)"
    )
    pointwise = notice.format("64, 1024, 1, 1", "1024, 1, 1, 1", "1024, 1, 1024, 1024")
    spatial = notice.format("64, 32, 3, 3", "288, 9, 3, 1", "288, 1, 96, 32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        warnings.warn(pointwise, UserWarning, stacklevel=1)
        warnings.warn(spatial, UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [spatial]


def test_under_ddp_the_per_process_lines_and_the_sampler_advice_are_silenced(caplog):
    """Each process's "Initializing distributed" line (the registered-processes box stays, once), and
    Lightning's advice to test on one device: the suite's test stage scores each face once over the
    processes (tests/training/test_ddp.py)."""
    advice = (
        "Using `DistributedSampler` with the dataloaders. During `trainer.test()`, it is recommended to use"
        " `Trainer(devices=1, num_nodes=1)` to ensure each sample/batch gets evaluated exactly once."
    )
    training = advice.replace("trainer.test()", "trainer.fit()")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        rank_zero_warn(advice)
        rank_zero_warn(training)
    assert [str(w.message) for w in caught] == [training]
    distributed = "lightning.fabric.utilities.distributed"
    with (
        caplog.at_level(logging.INFO, logger=distributed),
        caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"),
    ):
        logging.getLogger(distributed).info("Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2")
        rank_zero_info("All distributed processes registered. Starting with 2 processes")
    assert [r.getMessage() for r in caplog.records] == [
        "All distributed processes registered. Starting with 2 processes"
    ]
