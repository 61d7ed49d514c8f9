"""A checkpoint whose network has the per-landmark visibility head, shared by the inference tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

HEAD_CALIBRATION = dict(
    slope=1.7, intercept=-0.4, threshold=0.5, auroc=0.8, ap=0.5, recall_at_p80=0.3, precision=0.6, recall=0.5
)


@pytest.fixture(scope="session")
def head_checkpoint(trained_run, tmp_path_factory) -> Path:
    """The trained run's checkpoint (ODN, with its distillation module) with a visibility head added: its
    network outputs both P and the head's logits, and the head's must be the ones used. The head's
    weights are spread so that sigmoid(logit) ranges over (0, 1), and a calibration is set, as a run
    with flags leaves it (`occlusion_output.calibration`)."""
    from odn_lightning.evaluation.calibration import OcclusionCalibration
    from odn_lightning.training.callbacks import RUN_CONFIG_KEY
    from odn_lightning.training.checkpoints import load_checkpoint
    from odn_lightning.training.registry import build_model

    stored = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    stored[RUN_CONFIG_KEY] = copy.deepcopy(stored[RUN_CONFIG_KEY])
    stored[RUN_CONFIG_KEY]["model"]["net"]["visibility_head"] = True
    module = build_model(stored[RUN_CONFIG_KEY]["model"], "head_checkpoint")
    missing, unexpected = module.load_state_dict(stored["state_dict"], strict=False)
    assert not unexpected and missing and all(key.startswith("net.visibility.") for key in missing)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        head = module.net.visibility
        for weight in (head.point_weight, head.context_weight):
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
        head.bias.copy_(torch.randn(head.bias.shape, generator=generator))
        calibration = OcclusionCalibration(**HEAD_CALIBRATION, points=100, occluded_points=20, epoch=0)
        module.occlusion_output.calibration.copy_(calibration.to_tensor())
    stored["state_dict"] = module.state_dict()
    path = tmp_path_factory.mktemp("visibility_head") / "head.ckpt"
    torch.save(stored, path)
    return path


@pytest.fixture(scope="session")
def head_onnx(head_checkpoint, tmp_path_factory) -> Path:
    """`head_checkpoint`'s network exported to ONNX, its metadata beside it."""
    from odn_lightning.inference.exporting import export_model
    from odn_lightning.inference.model import load_trained_model

    return export_model(load_trained_model(head_checkpoint), tmp_path_factory.mktemp("head_onnx"), "onnx")[0]
