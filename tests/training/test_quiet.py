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
