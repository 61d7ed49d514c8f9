"""Scoring predictions made elsewhere on a dataset's ground truth, with that dataset's rules, without
its images (`python -m odn_lightning.score`).

Predictions come as the COFW-68 benchmark's result files (`cofw68_benchmark`), as the suite's own
`predictions.csv` (eval, train's test phase, ert), or as `predict`'s `landmarks.csv`; each is matched
to the split's faces:
- benchmark file: face i is the split's face i (the benchmark's own pairing, by position);
- predictions.csv: by its `index` column, and its ground-truth columns must equal the dataset's to
  0.01 px (they are the same faces in the same order, or the file is of another dataset);
- landmarks.csv: by image file name; where an image has several faces, the one whose points' tight
  box overlaps the ground truth's the most (IoU), as detections are matched to annotations.
A face without a prediction is left out of the suite's numbers, which then say the split was scored
in part (faces of faces_in_split), and counted as the COFW-68 benchmark counts it in its numbers.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import ENCODING, ERRORS, shown
from ..crop import face_box
from ..data.records import FaceRecord
from . import cofw68_benchmark as benchmark
from .report_files import point_columns, read_predictions

FORMATS = ("benchmark", "predictions_csv", "landmarks_csv")
# predictions.csv holds its ground truth with 6 decimals: equal faces agree far within this.
SAME_TRUTH_PX = 0.01


class PredictionsError(ValueError):
    """A predictions file that cannot be scored on the data given; one line saying why."""


@dataclass(frozen=True)
class SplitPredictions:
    """A split's predictions, face i at row i: points (N, L, 2) 0-based pixels, NaN where none."""

    points: np.ndarray
    has_prediction: np.ndarray  # (N,) bool
    occlusion_score: np.ndarray | None = None  # (N, L), the method's raw per-point occlusion score
    occluded: np.ndarray | None = None  # (N, L) bool, the method's 0/1 occlusion states
    probability: np.ndarray | None = None  # (N, L), its calibrated probability that a point is occluded


def detect_format(path: str | Path) -> str:
    """The format of a predictions file, from its first line: a CSV header naming `split` and `index`
    (predictions.csv) or `source` (landmarks.csv), else the benchmark's (a face index alone)."""
    path = Path(path)
    try:
        with path.open(encoding=ENCODING, errors=ERRORS) as f:
            first = f.readline()
    except OSError as err:
        raise PredictionsError(f"predictions={shown(path)}: cannot read ({err.strerror or err})") from err
    columns = [c.strip() for c in first.split(",")]
    if "split" in columns and "index" in columns and "pred_x0" in columns:
        return "predictions_csv"
    if "source" in columns and "pred_x0" in columns:
        return "landmarks_csv"
    if first.strip().isdigit():
        return "benchmark"
    raise PredictionsError(
        f"predictions={shown(path)}: not a format the suite reads (the COFW-68 benchmark's result file, "
        "predictions.csv or landmarks.csv); give format= if it is one of them"
    )


def _point_count(path: Path, count: int, expected: int) -> None:
    if count != expected:
        raise PredictionsError(
            f"predictions={shown(path)}: {count} points a face, the data's scheme has {expected}: "
            "score it on a dataset with the same landmark scheme"
        )


def from_benchmark(path: Path, records: list[FaceRecord], name: str | None = None) -> benchmark.MethodResults:
    """A COFW-68 result file for a split of len(records) faces (face i: record i)."""
    _point_count(
        path, records[0].landmarks.shape[0] if records else benchmark.NUM_POINTS, benchmark.NUM_POINTS
    )
    return benchmark.read_results(path, num_faces=len(records), name=name)


def from_predictions_csv(path: Path, records: list[FaceRecord], split: str) -> SplitPredictions:
    """The split's rows of a predictions.csv, matched by `index` and checked by their ground truth."""
    by_split = read_predictions(path)
    if split not in by_split:
        raise PredictionsError(
            f"predictions={shown(path)} has no faces of split '{split}' (it has {', '.join(by_split) or 'none'})"
        )
    rows = by_split[split]
    count = len(records)
    _point_count(path, rows["predicted"].shape[1], records[0].landmarks.shape[0] if records else 0)
    points = np.full((count, rows["predicted"].shape[1], 2), np.nan)
    has = np.zeros(count, dtype=bool)
    scores = np.full(points.shape[:2], np.nan) if "occlusion" in rows else None
    probability = np.full(points.shape[:2], np.nan) if "probability" in rows else None
    for row, index in enumerate(rows["index"]):
        if not 0 <= index < count:
            raise PredictionsError(
                f"predictions={shown(path)}: split '{split}' face index {index} is outside 0..{count - 1}"
            )
        if has[index]:
            raise PredictionsError(f"predictions={shown(path)}: split '{split}' face {index} is given twice")
        offset = np.abs(rows["target"][row] - records[index].landmarks).max()
        if not offset <= SAME_TRUTH_PX:
            raise PredictionsError(
                f"predictions={shown(path)}: split '{split}' face {index}: its ground truth is {offset:.3g} px "
                f"from the dataset's ({records[index].source}): the file is of other faces or another order"
            )
        points[index], has[index] = rows["predicted"][row], True
        if scores is not None:
            scores[index] = rows["occlusion"][row]
        if probability is not None:
            probability[index] = rows["probability"][row]
    return SplitPredictions(points, has, scores, probability=probability)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def from_landmarks_csv(path: Path, records: list[FaceRecord]) -> SplitPredictions:
    """predict's landmarks.csv, matched to the split's faces by image file name and box overlap."""
    with path.open(encoding=ENCODING, errors=ERRORS, newline="") as f:
        rows = list(csv.DictReader(f))
    count = sum(1 for c in (rows[0] if rows else {}) if c.startswith("pred_x"))
    expected = records[0].landmarks.shape[0] if records else 0
    _point_count(path, count, expected)
    columns = point_columns("pred", count)
    # predict writes each point's calibrated probability (occ_prob); files of earlier versions the raw score.
    kind = next((k for k in ("occ_prob", "occ_score") if rows and f"{k}0" in rows[0]), None)
    with_scores = kind is not None
    faces: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {}
    for row in rows:
        try:
            points = np.array([float(row[c]) for c in columns]).reshape(count, 2)
            scores = np.array([float(row[f"{kind}{i}"]) for i in range(count)]) if with_scores else None
        except (TypeError, ValueError):
            raise PredictionsError(
                f"predictions={shown(path)}: the face of {row.get('source')!r} has a missing or non-numeric value"
            ) from None
        faces.setdefault(Path(row["source"]).name, []).append((points, scores))
    points = np.full((len(records), count, 2), np.nan)
    has = np.zeros(len(records), dtype=bool)
    occlusion = np.full(points.shape[:2], np.nan) if with_scores else None
    for i, record in enumerate(records):
        candidates = faces.get(Path(record.image_path).name, [])
        if not candidates:
            continue
        truth_box = face_box(record.landmarks)
        best = max(candidates, key=lambda face: _iou(face_box(face[0]), truth_box))
        points[i], has[i] = best[0], True
        if occlusion is not None:
            occlusion[i] = best[1]
    if kind == "occ_prob":
        return SplitPredictions(points, has, probability=occlusion)
    return SplitPredictions(points, has, occlusion)


def read_split_predictions(
    path: str | Path, fmt: str, records: list[FaceRecord], split: str, name: str | None = None
) -> SplitPredictions:
    """The predictions of `path` (format `fmt`, one of FORMATS) for a split's faces."""
    path = Path(path)
    if fmt == "benchmark":
        try:
            results = from_benchmark(path, records, name)
        except benchmark.ResultFileError as err:
            raise PredictionsError(str(err)) from None
        return SplitPredictions(results.points, results.has_result, occluded=results.occluded)
    if fmt == "predictions_csv":
        return from_predictions_csv(path, records, split)
    if fmt == "landmarks_csv":
        return from_landmarks_csv(path, records)
    raise PredictionsError(f"format={fmt}: choose one of {', '.join(FORMATS)} (or auto)")
