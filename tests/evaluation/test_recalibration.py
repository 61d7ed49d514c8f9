"""eval calibrate=true: the occlusion calibration refitted on the evaluated data's validation split,
used for the test numbers and written into recalibrated.ckpt for predict and export."""

from __future__ import annotations

import pytest
import torch

from odn_lightning.eval import evaluate
from odn_lightning.evaluation.calibration import OcclusionCalibration, uncalibrated
from odn_lightning.evaluation.recalibration import STATE_KEY, CalibrationUnavailable
from odn_lightning.inference.model import load_trained_model
from odn_lightning.training.checkpoints import load_checkpoint

from ..helpers.configs import compose_config


def test_eval_refits_the_calibration_and_writes_it_into_a_checkpoint(trained_run, tmp_path):
    source = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    # A checkpoint without a calibration (as one from a run without flags): eval calibrates on demand.
    source["state_dict"][STATE_KEY] = uncalibrated()
    stripped = tmp_path / "uncalibrated.ckpt"
    torch.save(source, stripped)
    assert load_trained_model(stripped).calibration is None
    out = tmp_path / "eval"
    cfg = compose_config("eval", [f"ckpt_path={stripped}", "calibrate=true", "pictures=0"], out)
    metrics = evaluate(cfg, ["calibrate=true"])
    written = load_trained_model(out / "recalibrated.ckpt").calibration
    assert isinstance(written, OcclusionCalibration)
    # The figures it stores are those logged for the validation split it was fitted on.
    assert written.auroc == pytest.approx(metrics["val/occlusion_probability_auroc"], abs=1e-6)
    # The test splits were measured with it (the checkpoint's own, none, would give no such number).
    assert "test/full/occlusion_probability_auroc" in metrics
    assert "calibration refitted on 'val'" in (out / "report.md").read_text()
    # Everything but the calibration is the checkpoint's.
    recalibrated = load_checkpoint(out / "recalibrated.ckpt")["state_dict"]
    for name, value in source["state_dict"].items():
        if name != STATE_KEY:
            assert torch.equal(value, recalibrated[name]), name


def test_calibrate_on_a_network_without_occlusion_output_is_one_clear_error(
    trained_run, tmp_path, monkeypatch
):
    from odn_lightning.evaluation import recalibration

    class NoOcclusion:  # what a BRNet has: neither the distillation module nor the visibility head
        distillation = visibility = None

    model = type("Module", (), {"net": NoOcclusion()})()
    with pytest.raises(CalibrationUnavailable, match="the network has no occlusion output"):
        recalibration.recalibrate(None, model, None, "val")
