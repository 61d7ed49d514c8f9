"""The COFW-68 benchmark's rules (golnazghiasi/cofw68-benchmark: Main.m, LandmarkLocalizationEval.m,
ReadDetectionResults.m), each pinned on constructed annotation and result files with numbers worked
out by hand. The benchmark's own files carry no licence: these fixtures are written here in its
format, never copied."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from odn_lightning.data.formats.cofw68 import read_cofw68_annotations
from odn_lightning.data.records import AnnotationError
from odn_lightning.evaluation import cofw68_benchmark as benchmark
from odn_lightning.evaluation.cofw68_benchmark import ResultFileError


def eyes_face(seed: int) -> np.ndarray:
    """68 0-based points whose eyes are hand-placed: left eye (points 37-42, 1-based) centred at
    (10, 20) with its outer corner (37) at (5, 20); right eye (43-48) centred at (40, 20) with its
    outer corner (46) at (45, 20). Eye-centre distance 30, outer-corner distance 40."""
    points = np.random.default_rng(seed).uniform(0, 60, (68, 2))
    points[36:42] = [(5, 20), (8, 18), (12, 18), (15, 20), (12, 22), (8, 22)]
    points[42:48] = [(35, 20), (38, 18), (42, 18), (45, 20), (42, 22), (38, 22)]
    return points


def write_annotations(folder: Path, faces: list[np.ndarray], occluded: list[np.ndarray]) -> Path:
    """`{i}_points.mat` as the benchmark ships them: 1-based `Points` (68 x 2) and `Occ` (68 x 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (points, occ) in enumerate(zip(faces, occluded, strict=True), start=1):
        scipy.io.savemat(
            str(folder / f"{i}_points.mat"), {"Points": points + 1.0, "Occ": occ.astype(float)[:, None]}
        )
    return folder


def result_lines(index: int, points: np.ndarray, states: np.ndarray) -> str:
    """One face in ReadDetectionResults.m's format: index, 68 x, 68 y, 68 states (1-based pixels)."""
    x = " ".join(f"{v:.3f}" for v in points[:, 0] + 1.0)
    y = " ".join(f"{v:.3f}" for v in points[:, 1] + 1.0)
    return f"{index}\n{x}\n{y}\n{' '.join(str(int(s)) for s in states)}\n"


@pytest.fixture
def three_faces(tmp_path):
    """Three faces: face 1 predicted 5 px off at every visible point and 50 px off at its 10 occluded
    ones (points 1-10), calling points 1-5 and 11-12 occluded; face 2 predicted exactly, calling
    nothing occluded; face 3 has no result."""
    faces = [eyes_face(s) for s in range(3)]
    occluded = [np.zeros(68, bool) for _ in range(3)]
    occluded[0][:10] = True
    occluded[1][20:24] = True  # face 2: 4 occluded points, none called
    folder = write_annotations(tmp_path / "test_annotations", faces, occluded)
    predicted = faces[0] + np.where(occluded[0][:, None], [30.0, 40.0], [3.0, 4.0])  # errors 50 and 5
    states = np.zeros(68, int)
    states[[0, 1, 2, 3, 4, 10, 11]] = 1
    text = result_lines(2, faces[1], np.zeros(68, int)) + result_lines(1, predicted, states)  # any order
    (tmp_path / "method.txt").write_text(text)
    truth, truth_occluded = read_cofw68_annotations(folder, expected_faces=3)
    results = benchmark.read_results(tmp_path / "method.txt", num_faces=3)
    return truth, truth_occluded, results


def test_result_file_round_trip_and_its_one_based_frame(tmp_path):
    points = eyes_face(0)
    states = np.zeros(68, bool)
    states[3] = True
    path = benchmark.write_results(tmp_path / "r.txt", points[None], states[None], indices=[2])
    lines = path.read_text().splitlines()
    assert lines[0] == "2" and len(lines) == 4
    # Written 1-based as the annotations' Points are: point 37 (0-based 36) at x 5 is written 6.000.
    assert lines[1].split()[36] == "6.000" and lines[2].split()[36] == "21.000"
    read = benchmark.read_results(path, num_faces=2)
    assert read.has_result.tolist() == [False, True]
    np.testing.assert_allclose(read.points[1], points, atol=5e-4)
    assert read.occluded[1].tolist() == states.tolist()


def test_face_errors_by_eye_centres_and_by_outer_corners(three_faces):
    truth, truth_occluded, results = three_faces
    # Face 1, all points: (10 x 50 + 58 x 5) / 68 = 790 / 68 px; eye centres 30 apart, corners 40.
    pupil = benchmark.face_errors(results, truth, truth_occluded, "inter_pupil", "all")
    ocular = benchmark.face_errors(results, truth, truth_occluded, "inter_ocular", "all")
    assert pupil[0] == pytest.approx(790 / 68 / 30, rel=1e-4)
    assert ocular[0] == pytest.approx(790 / 68 / 40, rel=1e-4)
    assert pupil[1] == pytest.approx(0.0, abs=1e-4)
    assert math.isnan(pupil[2])  # no result: NaN (LandmarkLocalizationEval.m l. 9-11)


def test_visible_subset_averages_visible_points_over_all_points_eye_distance(three_faces):
    truth, truth_occluded, results = three_faces
    # Face 1's occluded points are 1-10 (not eye points); its visible points are all 5 px off. Face 2
    # has occluded points 21-24, each exact: its visible error is still 0.
    visible = benchmark.face_errors(results, truth, truth_occluded, "inter_pupil", "visible")
    assert visible[0] == pytest.approx(5 / 30, rel=1e-4)
    assert visible[1] == pytest.approx(0.0, abs=1e-4)


def test_visible_subset_keeps_the_normalising_distance_of_all_eye_points(tmp_path):
    # Point 37 (the left outer corner, 0-based 36) occluded: the eye centre still uses all six points
    # (l. 16-18 run before l. 30-34 take the subset), so the distance stays 30.
    face = eyes_face(5)
    occluded = np.zeros(68, bool)
    occluded[36] = True
    folder = write_annotations(tmp_path / "ann", [face], [occluded])
    (tmp_path / "r.txt").write_text(result_lines(1, face + [0.0, 6.0], np.zeros(68, int)))
    truth, truth_occluded = read_cofw68_annotations(folder)
    results = benchmark.read_results(tmp_path / "r.txt", num_faces=1)
    errors = benchmark.face_errors(results, truth, truth_occluded, "inter_pupil", "visible")
    assert errors[0] == pytest.approx(6 / 30, rel=1e-4)


def test_missing_face_leaves_the_mean_and_fails_every_threshold(three_faces):
    truth, truth_occluded, results = three_faces
    numbers = benchmark.score(results, truth, truth_occluded)
    # nanmean (Main.m l. 81) over faces 1 and 2 only.
    assert numbers["inter_pupil/all/nme"] == pytest.approx((790 / 68 / 30 + 0.0) / 2, rel=1e-4)
    assert numbers["inter_ocular/visible/nme"] == pytest.approx((5 / 40 + 0.0) / 2, rel=1e-4)
    # Success rate at 0.1 over all three faces (Main.m l. 82): face 1 (0.387) fails, face 2 passes,
    # face 3 without a result fails. Eye corners, visible points: face 1 at 0.125 fails 0.1 too.
    assert numbers["inter_pupil/all/below_10"] == pytest.approx(1 / 3)
    assert numbers["inter_ocular/visible/below_10"] == pytest.approx(1 / 3)
    assert numbers["faces_with_result"] == 2 and numbers["faces_without_result"] == 1


def test_occlusion_precision_recall_pool_all_points_of_faces_with_a_result(three_faces):
    truth, truth_occluded, results = three_faces
    # Faces 1 and 2 (face 3 has no result, so none of its points count). Face 1 calls points 1-5 and
    # 11-12 occluded: 5 true positives, 2 false positives, 5 misses (points 6-10). Face 2 calls
    # nothing: its 4 occluded points are misses. Precision 5 / 7, recall 5 / 14.
    precision, recall = benchmark.occlusion_precision_recall(results, truth_occluded)
    assert precision == pytest.approx(5 / 7)
    assert recall == pytest.approx(5 / 14)


def test_a_method_calling_nothing_occluded_has_no_precision(three_faces, tmp_path):
    truth, truth_occluded, _ = three_faces
    text = "".join(result_lines(i, truth[i - 1], np.zeros(68, int)) for i in (1, 2, 3))
    (tmp_path / "none.txt").write_text(text)
    results = benchmark.read_results(tmp_path / "none.txt", num_faces=3)
    precision, recall = benchmark.occlusion_precision_recall(results, truth_occluded)
    assert math.isnan(precision) and recall == 0.0  # 0 / 0 in MATLAB; PlotCED.m prints no precision


def _bad(tmp_path, text: str) -> str:
    (tmp_path / "bad.txt").write_text(text)
    with pytest.raises(ResultFileError) as caught:
        benchmark.read_results(tmp_path / "bad.txt", num_faces=3)
    message = str(caught.value)
    assert "\n" not in message and "bad.txt" in message
    return message


def test_bad_result_files_are_refused_in_one_line_naming_file_and_line(tmp_path):
    face = eyes_face(0)
    good = result_lines(1, face, np.zeros(68, int))
    x_line = " ".join(["1.0"] * 67)
    assert "line 2: 67 x coordinates" in _bad(tmp_path, good.replace(good.splitlines()[1], x_line, 1))
    assert "line 1: face index '4' is not within 1..3" in _bad(tmp_path, result_lines(4, face, np.zeros(68)))
    assert "line 1: face index '0'" in _bad(tmp_path, result_lines(0, face, np.zeros(68)))
    assert "line 5: face 1 is given twice" in _bad(tmp_path, good + good)
    assert "not a multiple of 4" in _bad(tmp_path, good + "2\n")
    assert "line 4: occlusion states must be 0" in _bad(tmp_path, result_lines(1, face, np.full(68, 2)))


def test_annotation_folder_with_missing_faces_is_refused(tmp_path):
    faces = [eyes_face(s) for s in range(3)]
    folder = write_annotations(tmp_path / "ann", faces, [np.zeros(68, bool)] * 3)
    with pytest.raises(AnnotationError, match="3 annotation files, the benchmark has 507: 4_points.mat"):
        read_cofw68_annotations(folder, expected_faces=507)
    (folder / "2_points.mat").unlink()
    with pytest.raises(AnnotationError, match="2_points.mat is missing"):
        read_cofw68_annotations(folder)
