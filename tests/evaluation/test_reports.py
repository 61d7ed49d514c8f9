"""Evaluation reports: predictions.csv recomputes metrics.json, report.md, CED plots, pictures."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from odn_lightning import runs
from odn_lightning.data.formats.w300 import occlusion_path, read_occlusion
from odn_lightning.eval import evaluate
from odn_lightning.evaluation.report_files import (
    read_predictions,
    report_table,
    write_predictions,
    write_report,
)
from odn_lightning.evaluation.report_pictures import network_fact, network_name, worst_first
from odn_lightning.evaluation.reports import EvaluationReport

from ..helpers.configs import compose_config
from ..helpers.occlusion import detection_scores_by_definition

OCCLUSION_AUROCS = ("occluder_auroc", "occluder_auroc_face", "face_auroc", "landmark_occlusion_auroc")


def pairwise_auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """P(positive > negative) + P(tie) / 2, pair by pair."""
    diff = positives[:, None] - negatives[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


@pytest.fixture
def report_callbacks(monkeypatch) -> list[EvaluationReport]:
    """The EvaluationReport callbacks the entry points build during the test, to read their counts."""
    built: list[EvaluationReport] = []
    instantiate_each = runs.instantiate_each

    def recording(node):
        objects = instantiate_each(node)
        built.extend(o for o in objects if isinstance(o, EvaluationReport))
        return objects

    monkeypatch.setattr(runs, "instantiate_each", recording)
    return built


def test_eval_writes_report_predictions_ced_plots_and_pictures(trained_run, tmp_path, report_callbacks):
    out = tmp_path / "eval"
    checkpoint = trained_run / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        "eval",
        [
            f"ckpt_path={checkpoint}",
            "trainer.enable_progress_bar=false",
            "callbacks.evaluation_report.pictures=3",
        ],
        out,
    )
    metrics = evaluate(cfg)
    splits = ("common", "challenging", "full")
    for name in ["report.md", "predictions.csv", "ced.png"] + [f"ced_{s}.png" for s in splits]:
        assert (out / name).is_file(), name
    for split in splits:
        for kind in ("predictions", "worst", "figure6"):
            assert cv2.imread(str(out / f"{kind}_{split}.png")) is not None
        # The run's validation flags gave the checkpoint a calibration: the calibrated panels are drawn.
        assert f"test/{split}/occlusion_probability_auroc" in metrics
        assert cv2.imread(str(out / f"occlusion_{split}.png")) is not None
        # The synthetic data knows visibility and occluder masks: the occlusion numbers are measured.
        aurocs = [f"test/{split}/{k}" for k in OCCLUSION_AUROCS]
        assert {f"test/{split}/nme_occluded", f"test/{split}/nme_visible", *aurocs} <= set(metrics)
        assert all(0.0 <= metrics[key] <= 1.0 for key in aurocs)
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
        # Each point's occlusion score, against the .occ flags, gives the landmark occlusion AUROC.
        scores = faces["occlusion"]
        assert scores.shape == (len(faces["nme"]), 68) and ((scores >= 0) & (scores <= 1)).all()
        occluded = np.stack([read_occlusion(occlusion_path(Path(p)), 68) != 0 for p in faces["image_path"]])
        bins = np.floor(scores * 200)  # the metric's 0.005 steps
        assert pairwise_auroc(bins[occluded], bins[~occluded]) == pytest.approx(
            written[f"test/{split}/landmark_occlusion_auroc"], abs=1e-3
        )
        # And, score >= 0.5 predicting occluded (bin >= 100), the recall and average precision.
        expected = detection_scores_by_definition(bins, occluded, threshold=100)
        for name in ("recall", "ap"):
            assert expected[name] == pytest.approx(
                written[f"test/{split}/landmark_occlusion_{name}"], abs=1e-3
            )

    # worst_<split>.png shows the split's 3 faces with the highest NME, highest first.
    (callback,) = report_callbacks
    for split, faces in predictions.items():
        by_nme = sorted(zip(-faces["nme"], faces["index"], strict=True))
        assert callback.worst_faces[split] == [int(index) for _, index in by_nme[:3]], split

    report = (out / "report.md").read_text()
    assert (
        f"| common | {len(predictions['common']['nme'])} | {100 * written['test/common/nme']:.2f} |" in report
    )
    assert "![ced.png](ced.png)" in report and "![worst_challenging.png](worst_challenging.png)" in report
    # The evaluated checkpoint and the network as Table 4 names it.
    assert f"- checkpoint: {checkpoint}\n" in report
    # Under which limits the numbers were made: this test's, and those the checkpoint's run trained under.
    assert (
        "- limits: test trainer.limit_test_batches=2; training (the checkpoint's run) trainer.max_epochs=1, "
        "trainer.max_steps=null, trainer.limit_train_batches=3, trainer.limit_val_batches=2\n"
    ) in report
    assert "- network: ODN (GM+LM+DM) (class ODN: num_landmarks=68, use_gm=True" in report
    header = next(line for line in report.splitlines() if line.startswith("| split |"))
    assert "| occluder AUROC | occluder AUROC in face | face AUROC | landmark occlusion AUROC |" in header
    assert "| occlusion recall@0.5 (%) | occlusion recall@80% precision (%) | occlusion AP |" in header
    # The checkpoint is calibrated: the calibrated probability's figures follow, explained below the table.
    assert header.endswith("| calibrated occlusion recall@80% precision (%) |")
    assert "Calibrated occlusion: the probability that a point is occluded" in report
    assert "Recall@80% precision: the largest recall at a threshold where precision is >= 80%" in report
    assert "Occluder AUROC in face: the same over the face region only" in report
    # The run's 2 test batches of 8 hold every face of the tiny splits: nothing is said truncated.
    assert "runcated" not in report
    assert callback.split_counts == {"common": (8, 8), "challenging": (4, 4), "full": (12, 12)}
    assert written["test/full/faces_in_split"] == 12
    assert not list(out.glob("**/.*.tmp"))  # no temporary file left behind


def test_a_truncated_split_is_said_to_be(trained_run, tmp_path, report_callbacks):
    out = tmp_path / "eval"
    overrides = [
        f"ckpt_path={trained_run / 'checkpoints' / 'last.ckpt'}",
        "trainer.enable_progress_bar=false",
        "trainer.limit_test_batches=1",  # one batch of 8: `full` (12 faces) is cut to common's first 8
        "callbacks.evaluation_report.pictures=0",
    ]
    counts = evaluate(compose_config("eval", overrides, out), overrides)
    (callback,) = report_callbacks
    assert callback.split_counts == {"common": (8, 8), "challenging": (4, 4), "full": (8, 12)}
    assert counts["test/full/faces"] == 8 < counts["test/full/faces_in_split"] == 12
    assert counts["test/common/faces"] == counts["test/common/faces_in_split"] == 8
    report = (out / "report.md").read_text()
    assert "**Truncated splits**: full (8 of 12 faces). trainer.limit_test_batches=1 stopped" in report
    assert "| full | 8 of 12 (truncated) |" in report and "| common | 8 |" in report
    assert len(read_predictions(out / "predictions.csv")["full"]["nme"]) == 8


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
    for picture in pictures:
        assert cv2.imread(str(trained_run / "val_pictures" / picture)) is not None


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("brnet", "BRNet"),
        ("brnet_conv_pool", "BRNet, conv_pool readout"),
        ("gm_dm", "+GM+DM"),
        ("dm_lm", "+DM+LM"),
        ("gm_lm", "+GM+LM"),
        ("odn_no_l1", "ODN (GM+LM+DM) w/o L1"),
        ("odn", "ODN (GM+LM+DM)"),
    ],
)
def test_each_table4_network_is_named_as_the_paper_names_it(model, name, tmp_path):
    from types import SimpleNamespace

    from odn_lightning.models import ODN
    from odn_lightning.training.objective import LandmarkObjective

    config = compose_config("train", [f"model={model}"], tmp_path).model
    net_settings = {k: v for k, v in config.net.items() if k != "_target_"}
    module = SimpleNamespace(net=ODN(**net_settings), objective=LandmarkObjective(eta=config.objective.eta))
    assert network_name(module) == name
    if model == "brnet":
        fact = network_fact(module)
        assert fact == "BRNet (class ODN: num_landmarks=68, use_gm=False, use_dm=False, use_lm=False)"


def test_worst_faces_are_the_highest_nme_failures_first_each_once():
    nmes = [0.1, float("nan"), 0.3, 0.3, 0.05, 0.2]
    faces = [{"index": i, "nme": e} for i, e in enumerate(nmes)]
    faces.append({"index": 3, "nme": 0.3})  # DDP's padding repeats a face
    assert [face["index"] for face in worst_first(faces, 4)] == [1, 2, 3, 5]
    assert worst_first(faces, 0) == [] and len(worst_first(faces, 10)) == 6


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
    assert "occlusion" not in back["a"]  # a network without P: no scores, as in files written before them
    for row in rows:
        row["occlusion"] = rng.uniform(0, 1, 5)
    path = write_predictions(rows, tmp_path / "scores.csv")
    assert (
        path.read_text()
        .splitlines()[0]
        .endswith(",gt_y4,occ_score0,occ_score1,occ_score2,occ_score3,occ_score4")
    )
    back = read_predictions(path)
    assert back["a"]["occlusion"].shape == (2, 5)
    np.testing.assert_allclose(back["b"]["occlusion"][0], rows[2]["occlusion"], atol=1e-6)
    np.testing.assert_allclose(back["b"]["predicted"][0], rows[2]["predicted"], atol=1e-6)


def test_report_table_is_in_the_papers_units():
    metrics = {
        "test/common/nme": 0.0408,
        "test/common/auc_08": 0.5,
        "test/common/fr_08": 0.031,
        "test/common/faces": 554,
    }
    table = report_table(metrics, ["common"], (0.08,))
    assert table.splitlines()[2] == "| common | 554 | 4.08 | 0.5000 | 3.10 | - |"


def test_report_shows_the_occlusion_aurocs_measured_with_their_legend(tmp_path):
    metrics = {
        "test/common/nme": 0.05,
        "test/common/faces": 8,
        "test/common/occluder_auroc_face": 0.53732,
        "test/common/face_auroc": 0.81234,
        "test/common/landmark_occlusion_auroc": 0.7,
        "test/common/occlusion_probability_auroc": 0.69254,
        "test/cofw/nme": 0.06,
        "test/cofw/face_auroc": 0.6,
    }
    lines = report_table(metrics, ["common", "cofw"], (0.08,)).splitlines()
    assert lines[0].endswith(
        "| mean-shape NME (x10^-2) | occluder AUROC in face | face AUROC | landmark occlusion AUROC "
        "| calibrated occlusion AUROC |"
    )
    # Every AUROC a fraction with 4 digits (never x100 as a percentage).
    assert lines[2].endswith("| - | 0.5373 | 0.8123 | 0.7000 | 0.6925 |")
    assert lines[3].endswith("| - | - | 0.6000 | - | - |")
    text = write_report(tmp_path / "report.md", metrics, ["common", "cofw"], (0.08,), {}, []).read_text()
    assert "Face AUROC: P against the face region (face pixels positive) over every pixel" in text
    del metrics["test/common/face_auroc"], metrics["test/common/landmark_occlusion_auroc"]
    del metrics["test/common/occluder_auroc_face"], metrics["test/common/occlusion_probability_auroc"]
    del metrics["test/cofw/face_auroc"]
    text = write_report(tmp_path / "report.md", metrics, ["common", "cofw"], (0.08,), {}, []).read_text()
    assert "AUROC" not in text  # a network without P: neither columns nor legend


def test_report_shows_the_landmark_occlusion_detection_numbers_with_their_legend(tmp_path):
    metrics = {
        "test/common/nme": 0.05,
        "test/cofw/nme": 0.06,
        "test/cofw/landmark_occlusion_auroc": 0.71234,
        "test/cofw/landmark_occlusion_precision": 2 / 3,
        "test/cofw/landmark_occlusion_recall": 0.8,
        "test/cofw/landmark_occlusion_recall_at_p80": 0.4,
        "test/cofw/landmark_occlusion_ap": 0.885,
    }
    lines = report_table(metrics, ["common", "cofw"], (0.08,)).splitlines()
    assert lines[0].endswith(
        "| landmark occlusion AUROC | occlusion precision@0.5 (%) | occlusion recall@0.5 (%) "
        "| occlusion recall@80% precision (%) | occlusion AP |"
    )
    # Precision and recall in %, AP and AUROC as fractions; a split without flags: not measured.
    assert lines[2].endswith("| - | - | - | - | - | - |")
    assert lines[3].endswith("| 0.7123 | 66.67 | 80.00 | 40.00 | 0.8850 |")
    text = write_report(tmp_path / "report.md", metrics, ["common", "cofw"], (0.08,), {}, []).read_text()
    assert "a point is predicted occluded when its score is >= 0.5" in text and "(uncalibrated)" in text
    # Precision measured in no split (nothing predicted occluded): no column; the others stand.
    del metrics["test/cofw/landmark_occlusion_precision"]
    lines = report_table(metrics, ["common", "cofw"], (0.08,)).splitlines()
    assert "precision@0.5" not in lines[0] and lines[3].endswith("| 0.7123 | 80.00 | 40.00 | 0.8850 |")
    for name in ("recall", "recall_at_p80", "ap"):
        del metrics[f"test/cofw/landmark_occlusion_{name}"]
    text = write_report(tmp_path / "report.md", metrics, ["common", "cofw"], (0.08,), {}, []).read_text()
    assert "Landmark occlusion AUROC" in text and "predicted occluded" not in text


def test_ced_curves_of_several_runs_overlay(tmp_path):
    from odn_lightning.evaluation.plots import ced_legend
    from odn_lightning.evaluation.report_files import overlay_ced

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


def test_a_non_utf8_image_path_survives_predictions_csv(tmp_path):
    name = os.fsdecode(b"/data/face\xff\xe9.jpg")  # how Python holds a path that is not UTF-8
    rows = [
        {
            "image_path": path,
            "split": "common",
            "index": i,
            "normalising_distance": 10.0,
            "nme": 0.01,
            "predicted": np.zeros((2, 2)),
            "target": np.ones((2, 2)),
        }
        for i, path in enumerate([name, "/data/visage é.jpg", "/data/two,\nlines.jpg"])
    ]
    path = write_predictions(rows, tmp_path / "predictions.csv")
    assert b"/data/face\xff\xe9.jpg" in path.read_bytes()
    back = read_predictions(path)["common"]["image_path"].tolist()
    assert back == [name, "/data/visage é.jpg", "/data/two,\nlines.jpg"]
    assert os.fsencode(back[0]) == b"/data/face\xff\xe9.jpg"


def test_report_shows_nan_as_nan_and_unmeasured_as_a_dash():
    metrics = {"test/common/nme": float("nan"), "test/common/fr_08": 0.25, "test/common/faces": 4}
    table = report_table(metrics, ["common"], (0.08,))
    assert table.splitlines()[2] == "| common | 4 | NaN | - | 25.00 | - |"
    assert (
        report_table({"test/common/nme": None}, ["common"], (0.08,))
        .splitlines()[2]
        .startswith("| common | - | NaN |")
    )


def test_report_of_an_untruncated_evaluation_says_nothing_of_truncation(tmp_path):
    metrics = {"test/common/faces": 8.0, "test/common/faces_in_split": 8.0, "test/common/nme": 0.05}
    text = write_report(tmp_path / "report.md", metrics, ["common"], (0.08,), {}, []).read_text()
    assert "runcated" not in text and "| common | 8 | 5.00 |" in text
    metrics["test/common/faces"] = 3.0
    text = write_report(tmp_path / "report.md", metrics, ["common"], (0.08,), {}, []).read_text()
    assert "**Truncated splits**: common (3 of 8 faces)" in text and "| common | 3 of 8 (truncated) |" in text


def test_metrics_json_keeps_non_finite_values_as_null(tmp_path):
    import torch

    metrics = runs.scalar_metrics(
        {"test/common/nme": torch.tensor(float("nan")), "test/common/fr_10": torch.tensor(0.25), "b": 1}
    )
    assert list(metrics) == ["b", "test/common/fr_10", "test/common/nme"]
    assert math.isnan(metrics["test/common/nme"])
    path = runs.write_metrics(tmp_path / "run", {**metrics, "test/x/auc": float("inf")})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "b": 1.0,
        "test/common/fr_10": 0.25,
        "test/common/nme": None,
        "test/x/auc": None,
    }
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_summary_shows_nan_and_truncated_splits(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    metrics = {
        "test/common/nme": float("nan"),
        "test/common/fr_10": None,
        "test/common/auc_08": 0.5,
        "test/common/faces": 8.0,
        "test/common/faces_in_split": 8.0,
        "test/full/faces": 16.0,
        "test/full/faces_in_split": 562.0,
    }
    runs.print_summary("odn-eval", metrics, {"run directory": "/tmp/run"})
    lines = [" ".join(line.replace("│", " ").split()) for line in capsys.readouterr().out.splitlines()]
    # A row per split: faces, NME, AUC@0.08, FR@0.10 (no split has a mean-shape NME: no column).
    assert "common 8 NaN 0.5000 NaN" in lines  # common is whole
    assert "full 16 of 562 * - - -" in lines
    assert "* truncated: trainer.limit_test_batches or skipped bad faces" in lines
    assert "run directory: /tmp/run" in lines


def test_table4_shows_a_null_metric_as_nan_and_a_missing_one_as_a_dash():
    from odn_lightning.evaluation.ablation_table import SweepRun, table_markdown

    run = SweepRun("odn", "done", Path("/sweep/0"), {"test/common/nme": None})
    row = table_markdown([run], ["common"], 0.10).splitlines()[2]
    assert row == "| ODN (GM+LM+DM) | NaN | - | - | - | - | `0` |"  # params, GFLOPs unknown: "-"


def test_table4_occlusion_table_gives_occluded_nme_and_the_map_aurocs_per_row():
    from odn_lightning.evaluation.ablation_table import SweepRun, occlusion_markdown

    odn_seeds = [
        {"test/full/nme_occluded": 0.20, "test/full/face_auroc": 0.80, "test/full/occluder_auroc_face": 0.4},
        {"test/full/nme_occluded": 0.22, "test/full/face_auroc": 0.90, "test/full/occluder_auroc_face": 0.6},
    ]
    for seed, ap, recall_at_p80 in zip(odn_seeds, (0.70, 0.80), (0.50, 0.60), strict=True):
        seed.update(
            {
                "test/full/landmark_occlusion_ap": ap,
                "test/full/landmark_occlusion_recall_at_p80": recall_at_p80,
            }
        )
    odn = SweepRun("odn", "done", Path("/s/1"), odn_seeds[0], ["full"], odn_seeds, [Path("/s/1")] * 2, 2)
    brnet = SweepRun("brnet", "done", Path("/s/0"), {"test/full/nme_occluded": 0.18}, ["full"])
    failed = SweepRun("gm_dm", "failed", Path("/s/2"))
    lines = occlusion_markdown([brnet, odn, failed], ["full"], "full").splitlines()
    assert len(lines) == 4  # header, rule, the two done rows
    assert lines[2] == "| BRNet | 18.00 | - | - | - | - | - | - | - | - | - | - |"  # no map: no AUROCs
    assert lines[3] == (
        "| ODN (GM+LM+DM) | 21.00 ± 1.41 | 0.500 ± 0.141 | 0.850 ± 0.071 | - | 0.750 ± 0.071 | - | - "
        "| 55.00 ± 7.07 | - | - | - |"
    )
    assert lines[0].endswith(
        "| full per-landmark occlusion AP | full occlusion precision@0.5 (%) | full occlusion recall@0.5 (%) "
        "| full occlusion recall@80% precision (%) | full calibrated occlusion AUROC | full calibrated "
        "occlusion AP | full calibrated recall@80% precision (%) |"
    )


def test_calibrated_occlusion_panels_colour_each_point_by_its_probability():
    from odn_lightning.evaluation.occlusion_panels import occlusion_probability_figure
    from odn_lightning.evaluation.plots import render_rgb

    images = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    points = [np.full((3, 2), 32.0), np.full((3, 2), 32.0)]
    probabilities = [np.array([0.0, 0.5, 1.0]), np.array([0.9, 0.9, 0.9])]
    visible = [np.array([True, True, False]), None]
    figure = occlusion_probability_figure(images, points, probabilities, visible, ["face 0", "face 1"])
    assert figure.axes[0].get_title() == "face 0\nmean prob. visible 0.25, occluded 1.00"
    assert figure.axes[1].get_title() == "face 1"  # no flags: no means
    picture = render_rgb(figure)
    # Red (probability 1) where the points are, over a black crop: the colour map is drawn.
    assert (picture[..., 0].astype(int) - picture[..., 1] > 100).any()
    with pytest.raises(ValueError, match="must each have 2 entries"):
        occlusion_probability_figure(images, points[:1], probabilities, visible, ["a", "b"])
