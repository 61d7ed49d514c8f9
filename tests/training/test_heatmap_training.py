"""The heatmap networks (issue 28) in the suite: their objective, and model=hrnet_w18 and
model=resnet18_heatmap trained, tested and evaluated from the checkpoint like any other run."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from odn_lightning.eval import evaluate
from odn_lightning.models import HeatmapNet
from odn_lightning.models.heatmaps import gaussian_heatmaps, sigma_for
from odn_lightning.train import train
from odn_lightning.training.callbacks import RUN_CONFIG_KEY
from odn_lightning.training.checkpoints import load_checkpoint
from odn_lightning.training.heatmap_objective import HeatmapObjective

from ..helpers.configs import LIMITS, compose_config


def test_the_objective_is_zero_at_the_targets_and_ignores_points_without_one():
    points = torch.tensor([[[0.1, -0.2], [0.5, 0.5], [1.5, 0.0]]])  # the last outside the crop
    objective = HeatmapObjective(sigma=1.5, sigma_at=64)
    exact = gaussian_heatmaps(points, 16, sigma_for(16))
    assert objective({"heatmaps": exact}, points, None)["heatmap_mse"] == 0
    wrong = exact.clone()
    wrong[0, 2] += 1.0  # the point outside has no target: its map is free
    assert objective({"heatmaps": wrong}, points, None)["heatmap_mse"] == 0
    wrong[0, 0] += 1.0
    assert objective({"heatmaps": wrong}, points, None)["heatmap_mse"] == pytest.approx(1 / 3)
    located = torch.tensor([[False, True, True]])
    assert objective({"heatmaps": wrong}, points, None, {"located": located})["heatmap_mse"] == 0


@pytest.mark.parametrize("backbone, parameters", [("hrnet_w18", 9.6e6), ("resnet18", 15.4e6)])
def test_heatmaps_at_a_quarter_of_the_crop_decode_into_its_frame(backbone, parameters):
    net = HeatmapNet(68, backbone=backbone).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out["heatmaps"].shape == (2, 68, 16, 16) and out["landmarks"].shape == (2, 68, 2)
    # A map whose maximum is not positive decodes to pixel (-1, -1), as both references do: just outside.
    assert out["landmarks"].isfinite().all() and out["landmarks"].abs().max() <= 1 + 2 / 16
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(parameters, rel=0.02)
    assert net.variant.startswith("HRNetV2-W18" if backbone == "hrnet_w18" else "ResNet-18 + deconv")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["hrnet_w18", "resnet18_heatmap"])
def test_a_heatmap_run_trains_tests_and_evaluates_from_its_checkpoint(model, train_config, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        metrics = train(train_config(f"model={model}", *LIMITS))
    # The run names its network as tables do.
    assert ("network HRNetV2-W18: " if model == "hrnet_w18" else "network ResNet-18 + deconv") in caplog.text
    assert metrics["test/common/nme"] > 0
    stored_config = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")[RUN_CONFIG_KEY]
    assert stored_config["model"]["objective"]["_target_"].endswith("HeatmapObjective")
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    evaluated = evaluate(
        compose_config(
            "eval",
            [f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "pictures=0"],
            tmp_path / "ev",
        )
    )
    assert evaluated["test/common/nme"] == pytest.approx(stored["test/common/nme"], rel=1e-5)


@pytest.mark.slow
def test_hrnet_facials_adam_and_step_decay_train_per_epoch(train_config):
    """The recipes' optimiser and schedule (model/optimizer=adam, model/scheduler=multi_step) step."""
    overrides = ["model=hrnet_w18", "model/optimizer=adam", "model/scheduler=multi_step"]
    metrics = train(train_config(*overrides, "model.scheduler_interval=epoch", *LIMITS))
    assert metrics["test/common/nme"] > 0
