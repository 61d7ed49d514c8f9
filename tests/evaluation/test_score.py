"""`python -m odn_lightning.score`: predictions made elsewhere scored on a dataset's ground truth with
its rules, without its images: the COFW-68 benchmark's result files, a run's predictions.csv (giving
back the run's own numbers) and predict's landmarks.csv; bad files refused in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from odn_lightning.evaluation import cofw68_benchmark as benchmark
from odn_lightning.evaluation.report_files import occlusion_columns, point_columns, read_predictions
from odn_lightning.evaluation.scoring import PredictionsError, detect_format
from odn_lightning.score import run_score

from ..helpers.configs import TINY_SYNTHETIC, compose_config
from .test_cofw68_benchmark import eyes_face, result_lines, write_annotations


@pytest.fixture
def benchmark_checkout(tmp_path) -> Path:
    """A checkout of the benchmark alone, in its layout, with three faces."""
    faces = [eyes_face(s) for s in range(3)]
    occluded = [np.arange(68) < 10 * (i + 1) for i in range(3)]
    root = tmp_path / "cofw68-benchmark"
    write_annotations(root / "COFW68_Data" / "test_annotations", faces, occluded)
    return root


def score(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    out = tmp_path / "score"
    cfg = compose_config("score", list(overrides), out)
    run_score(cfg)
    return json.loads((out / "metrics.json").read_text()), out


def test_benchmark_file_on_a_checkout_of_the_benchmark_alone(benchmark_checkout, tmp_path):
    truth, _ = (np.stack([eyes_face(s) for s in range(3)]), None)
    # Faces 1 and 3, every point 3, 4 px off (error 5), points 1-4 called occluded; face 2 missing.
    states = (np.arange(68) < 4).astype(int)
    text = result_lines(3, truth[2] + [3.0, 4.0], states) + result_lines(1, truth[0] + [3.0, 4.0], states)
    (tmp_path / "method.txt").write_text(text)
    metrics, out = score(
        tmp_path,
        "data=cofw68",
        f"data.root={benchmark_checkout}",
        "data.expected_counts.cofw68=3",
        f"predictions={tmp_path / 'method.txt'}",
    )
    # The benchmark's numbers: error 5 / 30 (eye centres) on both faces; face 2 counts as a failure.
    assert metrics["test/cofw68/benchmark/inter_pupil/all/nme"] == pytest.approx(5 / 30, rel=1e-4)
    assert metrics["test/cofw68/benchmark/inter_ocular/all/nme"] == pytest.approx(5 / 40, rel=1e-4)
    assert metrics["test/cofw68/benchmark/inter_ocular/all/below_08"] == 0.0
    assert metrics["test/cofw68/benchmark/inter_pupil/all/below_10"] == 0.0
    # Occlusion over faces 1 and 3: 4 + 4 called, all true; 10 + 30 occluded: precision 1, recall 8/40.
    assert metrics["test/cofw68/benchmark/occlusion_precision"] == pytest.approx(1.0)
    assert metrics["test/cofw68/benchmark/occlusion_recall"] == pytest.approx(8 / 40)
    # The same pooled states as the suite's threshold numbers; no scores, so no AUROC or AP.
    assert metrics["test/cofw68/landmark_occlusion_precision"] == pytest.approx(1.0)
    assert metrics["test/cofw68/landmark_occlusion_recall"] == pytest.approx(8 / 40)
    assert "test/cofw68/landmark_occlusion_ap" not in metrics
    # The suite's numbers (data=cofw68: outer eye corners) over the two faces scored, said to be partial.
    assert metrics["test/cofw68/nme"] == pytest.approx(5 / 40, rel=1e-4)
    assert metrics["test/cofw68/faces"] == 2 and metrics["test/cofw68/faces_in_split"] == 3
    report = (out / "report.md").read_text()
    assert "2 of 3 (truncated)" in report and "the COFW-68 benchmark's own rules" in report
    assert (out / "ced_cofw68.png").stat().st_size > 0
    rows = read_predictions(out / "predictions.csv")["cofw68"]
    assert rows["index"].tolist() == [0, 2]
    np.testing.assert_allclose(rows["predicted"][0], truth[0] + [3.0, 4.0], atol=1e-3)


def test_a_runs_predictions_csv_scores_to_the_runs_own_numbers(trained_run, synthetic_root, tmp_path):
    metrics, out = score(
        tmp_path,
        "data=synthetic",
        f"data.root={synthetic_root}",
        *TINY_SYNTHETIC,
        f"predictions={trained_run / 'predictions.csv'}",
    )
    own = json.loads((trained_run / "metrics.json").read_text())
    assert own["test/full/landmark_occlusion_ap"] is not None  # the run measured its occlusion numbers
    for split in ("common", "challenging", "full"):
        occlusion = ("landmark_occlusion_auroc", "landmark_occlusion_ap", "landmark_occlusion_recall_at_p80")
        for key in ("nme", "fr_10", "auc_08", "nme_occluded", "nme_visible", *occlusion):
            name = f"test/{split}/{key}"
            if own.get(name) is not None:
                assert metrics[name] == pytest.approx(own[name], rel=1e-5, abs=1e-7), name
        assert metrics[f"test/{split}/faces"] == own[f"test/{split}/faces"]
    # Its occlusion scores travel into the new predictions.csv.
    assert "occlusion" in read_predictions(out / "predictions.csv")["common"]


def test_landmarks_csv_matched_by_image_name_and_box_overlap(synthetic_root, tmp_path):
    from odn_lightning.data.formats import read_pts_folder

    records = read_pts_folder(synthetic_root / "challenging")
    first = records[0]
    # Two faces in the first image (the annotated one 2 px off, a far one), nothing for the others.
    decoy = first.landmarks + 500.0
    with (tmp_path / "landmarks.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "frame", "face", *point_columns("pred", 68), *occlusion_columns(68)])
        for face, points in enumerate([decoy, first.landmarks + [2.0, 0.0]]):
            writer.writerow([f"/elsewhere/{first.image_path.name}", "", face, *points.ravel(), *[0.1] * 68])
    assert detect_format(tmp_path / "landmarks.csv") == "landmarks_csv"
    metrics, _ = score(
        tmp_path,
        "data=synthetic",
        f"data.root={synthetic_root}",
        *TINY_SYNTHETIC,
        "splits=[challenging]",
        f"predictions={tmp_path / 'landmarks.csv'}",
    )
    corners = first.landmarks[36] - first.landmarks[45]
    assert metrics["test/challenging/nme"] == pytest.approx(2.0 / np.linalg.norm(corners), rel=1e-4)
    assert metrics["test/challenging/faces"] == 1
    assert metrics["test/challenging/faces_in_split"] == len(records)


def test_predictions_of_other_faces_or_another_scheme_are_refused(trained_run, synthetic_root, tmp_path):
    rows = list(csv.reader((trained_run / "predictions.csv").open()))
    header = rows[0]
    gt = header.index("gt_x0")
    rows[1][gt] = str(float(rows[1][gt]) + 3.0)  # the first face's ground truth moved: other faces
    with (tmp_path / "moved.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(PredictionsError, match="its ground truth is 3 px from the dataset's"):
        score(
            tmp_path,
            "data=synthetic",
            f"data.root={synthetic_root}",
            *TINY_SYNTHETIC,
            f"predictions={tmp_path / 'moved.csv'}",
        )
    with (tmp_path / "five.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "frame", "face", *point_columns("pred", 5)])
        writer.writerow(["a.png", "", 0, *[1.0] * 10])
    with pytest.raises(PredictionsError, match="5 points a face, the data's scheme has 68"):
        score(
            tmp_path,
            "data=synthetic",
            f"data.root={synthetic_root}",
            *TINY_SYNTHETIC,
            f"predictions={tmp_path / 'five.csv'}",
        )


def test_benchmark_numbers_of_score_equal_the_module(benchmark_checkout, tmp_path):
    truth = np.stack([eyes_face(s) for s in range(3)])
    rng = np.random.default_rng(1)
    text = "".join(
        result_lines(i + 1, truth[i] + rng.normal(0, 2, (68, 2)), rng.integers(0, 2, 68)) for i in range(3)
    )
    (tmp_path / "m.txt").write_text(text)
    metrics, _ = score(
        tmp_path,
        "data=cofw68",
        f"data.root={benchmark_checkout}",
        "data.expected_counts.cofw68=3",
        f"predictions={tmp_path / 'm.txt'}",
        "format=benchmark",
    )
    from odn_lightning.data.formats.cofw68 import read_cofw68_annotations

    points, occluded = read_cofw68_annotations(benchmark_checkout / "COFW68_Data" / "test_annotations")
    expected = benchmark.score(benchmark.read_results(tmp_path / "m.txt", 3), points, occluded)
    for key, value in expected.items():
        assert metrics[f"test/cofw68/benchmark/{key}"] == pytest.approx(value), key


def test_the_command_refuses_a_bad_result_file_in_one_line(benchmark_checkout, tmp_path):
    from ..helpers.cli import run_cli

    face = eyes_face(0)
    lines = result_lines(1, face, np.zeros(68, int)).splitlines()
    lines[1] = " ".join(lines[1].split()[:67])
    (tmp_path / "short.txt").write_text("\n".join(lines) + "\n")
    done = run_cli(
        "odn_lightning.score",
        "data=cofw68",
        f"data.root={benchmark_checkout}",
        "data.expected_counts.cofw68=3",
        f"predictions={tmp_path / 'short.txt'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {tmp_path / 'short.txt'}: line 2: 67 x coordinates, the benchmark needs 68 "
        "(4 lines a face: index, 68 x, 68 y, 68 occlusion states)"
    ]
    assert "Traceback" not in done.stderr
