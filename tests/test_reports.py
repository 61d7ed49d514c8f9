"""Evaluation reports: predictions.csv recomputes metrics.json, report.md, CED plots, pictures."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from odn_lightning.eval import evaluate
from odn_lightning.reports import read_predictions, report_table, write_predictions

from .helpers.configs import compose_config


def test_eval_writes_report_predictions_ced_plots_and_pictures(trained_run, tmp_path):
    out = tmp_path / "eval"
    cfg = compose_config(
        "eval",
        [f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}", "trainer.enable_progress_bar=false"],
        out,
    )
    metrics = evaluate(cfg)
    splits = ("common", "challenging", "full")
    for name in ["report.md", "predictions.csv", "ced.png"] + [f"ced_{s}.png" for s in splits]:
        assert (out / name).is_file(), name
    for split in splits:
        for kind in ("predictions", "figure6"):
            assert cv2.imread(str(out / f"{kind}_{split}.png")) is not None
        # The synthetic data knows visibility and occluder masks: the occlusion numbers are measured.
        assert {
            f"test/{split}/nme_occluded",
            f"test/{split}/nme_visible",
            f"test/{split}/occluder_auroc",
        } <= set(metrics)
        assert 0.0 <= metrics[f"test/{split}/occluder_auroc"] <= 1.0
    assert cv2.imread(str(out / "ced_common.png")).shape == (450, 600, 3)

    # Recomputing the NME from predictions.csv (original pixels) gives metrics.json's value.
    written = json.loads((out / "metrics.json").read_text())
    predictions = read_predictions(out / "predictions.csv")
    assert list(predictions) == list(splits)
    for split, faces in predictions.items():
        errors = (
            np.linalg.norm(faces["predicted"] - faces["target"], axis=-1).mean(axis=1)
            / faces["normalising_distance"]
        )
        np.testing.assert_allclose(errors, faces["nme"], rtol=1e-5)
        assert errors.mean() == pytest.approx(written[f"test/{split}/nme"], rel=1e-5)
        assert all(path.endswith(".jpg") for path in faces["image_path"])

    report = (out / "report.md").read_text()
    assert (
        f"| common | {len(predictions['common']['nme'])} | {100 * written['test/common/nme']:.2f} |" in report
    )
    assert "occluder AUROC" in report and "![ced.png](ced.png)" in report


def test_ground_truth_in_predictions_csv_is_the_annotation_in_original_pixels(trained_run, synthetic_root):
    from odn_lightning.data.formats.w300 import read_pts

    predictions = read_predictions(trained_run / "predictions.csv")
    faces = predictions["common"]
    assert len(faces["image_path"]) == 8  # the run tests every face of the tiny common split
    for path, target in zip(faces["image_path"], faces["target"], strict=True):
        np.testing.assert_allclose(target, read_pts(path.replace(".jpg", ".pts")), atol=1e-5)


def test_validation_pictures_are_written_each_epoch(trained_run):
    pictures = sorted(p.name for p in (trained_run / "val_pictures").iterdir())
    assert pictures == ["figure6_epoch000.png", "predictions_epoch000.png"]
    grid = cv2.imread(str(trained_run / "val_pictures" / "predictions_epoch000.png"))
    assert grid.shape == (2 * 64, 4 * 64, 3)  # 8 faces of 64 px crops, 4 per row


def test_predictions_csv_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {
            "image_path": f"/data/{i}.jpg",
            "split": "a" if i < 2 else "b",
            "index": i,
            "normalising_distance": 50.0 + i,
            "nme": 0.01 * i,
            "predicted": rng.uniform(0, 100, (5, 2)),
            "target": rng.uniform(0, 100, (5, 2)),
        }
        for i in range(3)
    ]
    back = read_predictions(write_predictions(rows, tmp_path / "p.csv"))
    assert list(back) == ["a", "b"] and back["a"]["index"].tolist() == [0, 1]
    np.testing.assert_allclose(back["b"]["predicted"][0], rows[2]["predicted"], atol=1e-6)
    np.testing.assert_allclose(back["a"]["target"][1], rows[1]["target"], atol=1e-6)


def test_report_table_is_in_the_papers_units():
    metrics = {
        "test/common/nme": 0.0408,
        "test/common/auc_08": 0.5,
        "test/common/fr_08": 0.031,
        "test/common/faces": 554,
    }
    table = report_table(metrics, ["common"], (0.08,))
    assert table.splitlines()[2] == "| common | 554 | 4.08 | 0.5000 | 3.10 | - |"


def test_ced_curves_of_several_runs_overlay(tmp_path):
    from odn_lightning.plots import ced_legend
    from odn_lightning.reports import overlay_ced

    runs = {}
    for name, scale in (("good", 0.01), ("bad", 0.2)):
        rows = [
            {
                "image_path": f"{i}.jpg",
                "split": "common",
                "index": i,
                "normalising_distance": 1.0,
                "nme": scale * (i + 1),
                "predicted": np.zeros((2, 2)),
                "target": np.zeros((2, 2)),
            }
            for i in range(4)
        ]
        (tmp_path / name).mkdir()
        write_predictions(rows, tmp_path / name / "predictions.csv")
        runs[name] = tmp_path / name
    path = overlay_ced(runs, "common", 0.1, tmp_path / "overlay.png")
    assert cv2.imread(str(path)).shape == (450, 600, 3)
    assert ced_legend("good", np.array([0.01, 0.02, 0.03, 0.04]), 0.1).endswith("FR 0.000)")
    missing = overlay_ced(runs, "challenging", 0.1, tmp_path / "none.png")  # no run has it: still drawn
    assert missing.is_file()
