"""The occlusion calibration fitted on demand at evaluation (`eval calibrate=true`): on the validation
split of the data being evaluated, for a checkpoint that has none (its run had no flags) or whose
calibration was fitted on other data. The module's validation refits it (`OcclusionOutput`), the test
splits are then measured with it, and the checkpoint is written again with it beside the evaluation
(`recalibrated.ckpt`), so that predict and export output what eval measured.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L

from ..training.checkpoints import AtomicCheckpointIO
from .calibration import OcclusionCalibration, uncalibrated

RECALIBRATED_FILE = "recalibrated.ckpt"
# Where a LandmarkModule's state dict keeps the calibration (`OcclusionOutput.calibration`).
STATE_KEY = "occlusion_output.calibration"


class CalibrationUnavailable(ValueError):
    """calibrate=true on a network or a split that gives nothing to calibrate; one line."""


def recalibrate(
    trainer: L.Trainer, model: L.LightningModule, datamodule: L.LightningDataModule, split: str
) -> OcclusionCalibration:
    """Refit the model's occlusion calibration on `split` (the data config's val_split) by one validation
    pass; its figures are logged as `val/occlusion_probability_*`. Raises CalibrationUnavailable where
    the network has no occlusion output or the split no flags with both classes."""
    net = getattr(model, "net", None)
    if getattr(net, "distillation", None) is None and getattr(net, "visibility", None) is None:
        raise CalibrationUnavailable(
            "calibrate=true: the network has no occlusion output (no distillation module, no visibility "
            "head) to calibrate"
        )
    model.occlusion_output.calibration.copy_(uncalibrated())
    trainer.validate(model, datamodule=datamodule, verbose=False)
    fitted = model.occlusion_output.fitted
    if fitted is None:
        raise CalibrationUnavailable(
            f"calibrate=true: split '{split}' has no visibility flags with both occluded and visible "
            "points to calibrate on; evaluate on data whose validation split has them"
        )
    return fitted


def write_recalibrated(checkpoint: dict[str, Any], model: L.LightningModule, path: Path) -> Path:
    """The checkpoint with the model's refitted calibration in place of its own, written atomically."""
    recalibrated = copy.copy(checkpoint)
    recalibrated["state_dict"] = dict(checkpoint["state_dict"])
    recalibrated["state_dict"][STATE_KEY] = model.occlusion_output.calibration.detach().cpu().clone()
    AtomicCheckpointIO().save_checkpoint(recalibrated, path)
    return path
