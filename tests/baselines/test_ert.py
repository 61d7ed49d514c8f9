"""The ERT anchor (dlib's shape predictor) on the suite's records, boxes and metrics, and as a Table-4 row."""

from __future__ import annotations

import json

import numpy as np
import torch

from odn_lightning.baselines.ert import ERT, ERTOptions
from odn_lightning.data.datamodule import LandmarkDataModule
from odn_lightning.data.dataset import LandmarkDataset
from odn_lightning.evaluation.ablation_table import collect
from odn_lightning.evaluation.metrics import per_sample_nme
from odn_lightning.evaluation.report_files import read_predictions
from odn_lightning.schemes import get_scheme

from ..helpers.cli import run_cli
from ..helpers.configs import TINY_SYNTHETIC

SMALL = ERTOptions(cascade_depth=4, num_trees_per_cascade_level=50, oversampling_amount=4)


def records(root, split):
    splits = {s: [s] for s in ("train", "val", "common", "challenging")}
    data = LandmarkDataModule("synthetic", str(root), splits, test_splits=["common", "challenging"])
    return data.checked_records(split)


def nme(predicted: np.ndarray, faces) -> float:
    target = torch.from_numpy(np.stack([r.landmarks for r in faces]).astype(np.float64))
    boxes = torch.from_numpy(np.stack([LandmarkDataset.normalising_box(r) for r in faces]))
    return float(
        per_sample_nme(
            torch.from_numpy(predicted), target, get_scheme("ibug68"), "inter_ocular", boxes
        ).mean()
    )


def test_ert_fits_its_training_faces_and_predicts_in_original_pixels(synthetic_root):
    train = records(synthetic_root, "train")
    model = ERT(SMALL).fit(train)
    fitted = model.predict(train)
    assert fitted.shape == (len(train), 68, 2)
    # Far better than the untrained start (the mean shape in each face's box), on the faces it saw.
    start = ERT(ERTOptions(cascade_depth=1, num_trees_per_cascade_level=1, nu=1e-6)).fit(train).predict(train)
    assert nme(fitted, train) < 0.5 * nme(start, train)


def test_ert_cli_writes_a_run_that_table4_reads_as_a_row(synthetic_root, tmp_path):
    sweep = tmp_path / "sweep"
    small = [
        f"ert.{k}={getattr(SMALL, k)}"
        for k in ("cascade_depth", "num_trees_per_cascade_level", "oversampling_amount")
    ]
    result = run_cli(
        "odn_lightning.ert",
        f"data.root={synthetic_root}",
        *TINY_SYNTHETIC,
        *small,
        "extras.print_config=false",
        f"hydra.run.dir={sweep / 'ert'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = sweep / "ert"
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["test/common/nme"] < metrics["test/challenging/nme"]
    assert metrics["test/full/faces"] == metrics["test/full/faces_in_split"] == 12
    predictions = read_predictions(run / "predictions.csv")
    assert len(predictions["common"]["nme"]) == 8
    assert abs(np.mean(predictions["common"]["nme"]) - metrics["test/common/nme"]) < 1e-6
    assert "ERT (dlib shape predictor)" in (run / "report.md").read_text()
    table, _ = collect(sweep, ["ert"])
    assert table.splitlines()[2].startswith("| ERT (dlib, Kazemi & Sullivan 2014) | ")
    assert "MISSING" not in table and "FAILED" not in table
