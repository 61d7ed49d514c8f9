"""The heatmap networks (issue 28) in the suite: their objective, and model=hrnet_w18 and
model=resnet18_heatmap trained, tested and evaluated from the checkpoint like any other run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
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

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"


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
def test_a_heatmap_run_trains_tests_and_evaluates_from_its_checkpoint(
    model, train_config, tmp_path, caplog, capsys
):
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
    if model == "resnet18_heatmap":  # the rest of a run's life, once: its network does not matter there
        run_is_exported_predicted_and_compared(tmp_path, stored, capsys)


def run_is_exported_predicted_and_compared(tmp_path, stored, capsys) -> None:
    """Export (ONNX, verified against eager), predict on a real photo, compare: as for ODN's runs."""
    from odn_lightning.compare import main_task as compare
    from odn_lightning.export import export
    from odn_lightning.inference.runtimes import OnnxRuntime
    from odn_lightning.predict import predict

    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    export(compose_config("export", [f"ckpt_path={checkpoint}"], tmp_path / "export"))
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and "ResNet-18 + deconv" in printed
    (model_file,) = (tmp_path / "export").glob("*.onnx")
    crops = torch.rand(2, 3, 64, 64).numpy()
    assert OnnxRuntime(model_file)(crops).landmarks.shape == (2, 68, 2)

    photo = PHOTOS / "einstein.jpg"
    predict(
        compose_config(
            "predict",
            ["progress=false", f"ckpt_path={checkpoint}", f"input={photo}", "detector=hog"],
            tmp_path / "predict",
        )
    )
    (face,) = json.loads((tmp_path / "predict" / "landmarks.json").read_text())["faces"]
    points = np.asarray(face["landmarks"])
    x0, y0, x1, y1 = face["detector_box"]
    side = max(x1 - x0, y1 - y0)
    # Mapped back through the crop's inverse into the photo, around the face the detector found.
    assert points.shape == (68, 2) and np.isfinite(points).all()
    assert np.abs(points - [(x0 + x1) / 2, (y0 + y1) / 2]).max() < 2 * side

    text = compare(compose_config("compare", [f"runs=[{tmp_path / 'run'}]"], tmp_path / "compare"))
    assert f"{stored['test/common/nme'] * 100:.2f}" in text


@pytest.mark.slow
def test_hrnet_facials_adam_and_step_decay_train_per_epoch(train_config):
    """The recipes' optimiser and schedule (model/optimizer=adam, model/scheduler=multi_step) step."""
    overrides = ["model=hrnet_w18", "model/optimizer=adam", "model/scheduler=multi_step"]
    metrics = train(train_config(*overrides, "model.scheduler_interval=epoch", *LIMITS))
    assert metrics["test/common/nme"] > 0
