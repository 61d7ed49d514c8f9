"""The COFW-68 benchmark's own evaluation, rule for rule: its result files and its numbers.

Reference: Ghiasi and Fowlkes, https://github.com/golnazghiasi/cofw68-benchmark at f9af958 (its
`Main.m`, `LandmarkLocalizationEval.m`, `ReadDetectionResults.m`, `PlotCED.m`).

Result file (`ReadDetectionResults.m`): four lines a face: the face's 1-based index into
`COFW_test.mat` (`imageid`, l. 7); its 68 x (l. 10-11); its 68 y (l. 14-15); its 68 occlusion states
(l. 18-19, 0 visible, 1 occluded). Faces in any order, each at most once (l. 22); coordinates in the
annotations' frame, MATLAB's 1-based pixels. Here points are held 0-based, as every reader of the
suite holds them (`data.formats.cofw68` shifts `Points` by -1): `read_results` subtracts 1 and
`write_results` adds it back. Errors are differences, so no number depends on the shift.

The rules (`LandmarkLocalizationEval.m` unless said):
- A face's error is its points' mean Euclidean error (l. 36-38) divided by the distance of the eye
  centres, each the mean of its eye's six points, 37-42 and 43-48 1-based (`Main.m` l. 8-9; l. 16-18
  here): `inter_pupil`. The suite's `inter_ocular` (outer eye corners 37 and 46, 1-based) is offered
  beside it, as the comparison tables from LAB on report COFW-68.
- `visible` subset (`eval_on_vis_keypoints`, `Main.m` l. 70): only the points annotated visible
  (`occ_gt == 0`, l. 30-34) enter a face's mean; the normalising distance is still the eye centres
  of all points (l. 16-18 run before the subset is taken).
- A face without a result has no error (NaN, l. 9-11). The mean error is `nanmean` (`Main.m` l. 81):
  such faces leave it. The success rate counts faces with error <= 0.1 over all faces (`Main.m`
  l. 82): a face without a result is a failure. Proportions below any other threshold (0.08, the
  paper's Fig. 4) are counted the same way. (`PlotCED.m`'s `ecdf` drops NaNs from its curve; the
  suite's CED counts such a face as never reached, as the success rate does; the two agree whenever
  every face has a result, as in every published result file.)
- Occlusion precision and recall (l. 40-55): the occluded class of one confusion matrix over all 68
  points of every face with a result (all points, in the `visible` subset too): recall = TP / (TP +
  FN), precision = TP / (TP + FP). A method that calls no point occluded has precision 0 / 0 = NaN
  (as MATLAB computes it; `PlotCED.m` then prints no precision), and recall 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_open, shown
from ..schemes import IBUG68

NUM_POINTS = IBUG68.num_landmarks
# The benchmark's faces (COFW's test set; `ReadDetectionResults.m` l. 4 allocates 507).
NUM_FACES = 507
SUCCESS_THRESHOLD = 0.1  # Main.m l. 82
FIGURE4_THRESHOLD = 0.08  # the ODN paper's Fig. 4: "92% of faces below 0.08"
NORMALISERS = ("inter_pupil", "inter_ocular")
SUBSETS = ("all", "visible")
# 0-based: the eye centres' points (Main.m l. 8-9, 37:42 and 43:48 1-based) and the outer corners.
EYE_CENTRE_POINTS = (tuple(range(36, 42)), tuple(range(42, 48)))
OUTER_EYE_CORNERS = (36, 45)


class ResultFileError(ValueError):
    """A result file that does not follow the benchmark's format; one line naming file, line, fault."""


@dataclass(frozen=True)
class MethodResults:
    """One method's results on the benchmark: face i at row i - 1, NaN points where it has none."""

    name: str
    source: str  # where they were read, for reports
    points: np.ndarray  # (N, 68, 2) float64, 0-based pixels
    occluded: np.ndarray  # (N, 68) bool, the method's occlusion states
    has_result: np.ndarray  # (N,) bool

    @property
    def faces_with_result(self) -> int:
        return int(self.has_result.sum())


def _numbers(path: Path, number: int, line: str, what: str, kind: type) -> np.ndarray:
    try:
        values = np.array([kind(v) for v in line.split()], dtype=np.float64)
    except ValueError:
        raise ResultFileError(
            f"{shown(path)}: line {number}: the {what} are not all {kind.__name__}s"
        ) from None
    if len(values) != NUM_POINTS:
        raise ResultFileError(
            f"{shown(path)}: line {number}: {len(values)} {what}, the benchmark needs {NUM_POINTS} "
            "(4 lines a face: index, 68 x, 68 y, 68 occlusion states)"
        )
    return values


def read_results(path: str | Path, num_faces: int = NUM_FACES, name: str | None = None) -> MethodResults:
    """A result file in the benchmark's format (`ReadDetectionResults.m`), checked as it checks
    (68 numbers a line, each face once) and more: an index within 1..`num_faces`, finite coordinates,
    occlusion states of 0 or 1 (`confusionmat` would read other values as further classes). Faces
    the file does not hold have no result. Raises ResultFileError in one line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise ResultFileError(f"{shown(path)}: cannot read ({err.strerror or err})") from err
    while lines and not lines[-1].strip():  # fgets/feof ends the file on its last face
        lines.pop()
    if len(lines) % 4:
        raise ResultFileError(
            f"{shown(path)}: {len(lines)} lines, not a multiple of 4 (index, 68 x, 68 y, 68 occlusion "
            "states a face)"
        )
    points = np.full((num_faces, NUM_POINTS, 2), np.nan)
    occluded = np.zeros((num_faces, NUM_POINTS), dtype=bool)
    has_result = np.zeros(num_faces, dtype=bool)
    for start in range(0, len(lines), 4):
        number = start + 1
        words = lines[start].split()
        if not words or not words[0].isdigit() or not 1 <= int(words[0]) <= num_faces:
            raise ResultFileError(
                f"{shown(path)}: line {number}: face index {lines[start].strip()!r} is not within "
                f"1..{num_faces}"
            )
        face = int(words[0]) - 1
        if has_result[face]:
            raise ResultFileError(f"{shown(path)}: line {number}: face {face + 1} is given twice")
        x = _numbers(path, number + 1, lines[start + 1], "x coordinates", float)
        y = _numbers(path, number + 2, lines[start + 2], "y coordinates", float)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ResultFileError(f"{shown(path)}: face {face + 1} (line {number}): non-finite coordinates")
        states = _numbers(path, number + 3, lines[start + 3], "occlusion states", int)
        if not np.isin(states, (0, 1)).all():
            raise ResultFileError(
                f"{shown(path)}: line {number + 3}: occlusion states must be 0 (visible) or 1 (occluded)"
            )
        points[face] = np.stack([x, y], axis=1) - 1.0  # MATLAB 1-based -> the suite's 0-based
        occluded[face] = states == 1
        has_result[face] = True
    return MethodResults(name or path.stem, str(path), points, occluded, has_result)


def write_results(
    path: str | Path,
    points: np.ndarray,
    occluded: np.ndarray,
    indices: Sequence[int] | None = None,
) -> Path:
    """Faces' results in the benchmark's format, atomically: points (N, 68, 2) 0-based pixels (written
    1-based), occluded (N, 68) bool, indices the faces' 1-based benchmark indices (default 1..N).
    Three decimals, as the published files; a file `Main.m` reads unchanged."""
    points = np.asarray(points, dtype=np.float64)
    occluded = np.asarray(occluded, dtype=bool)
    if points.shape[1:] != (NUM_POINTS, 2) or occluded.shape != points.shape[:2]:
        raise ValueError(f"results need (N, {NUM_POINTS}, 2) points and (N, {NUM_POINTS}) states")
    if not np.isfinite(points).all():
        raise ValueError("results hold non-finite points; the benchmark's evaluator cannot read them")
    indices = range(1, len(points) + 1) if indices is None else indices
    with atomic_open(path, "w") as f:
        for index, face, states in zip(indices, points + 1.0, occluded, strict=True):
            f.write(f"{int(index)}\n")
            f.write(" ".join(f"{v:.3f}" for v in face[:, 0]) + "\n")
            f.write(" ".join(f"{v:.3f}" for v in face[:, 1]) + "\n")
            f.write(" ".join(str(int(s)) for s in states) + "\n")
    return Path(path)


def normalising_distances(truth: np.ndarray, normaliser: str) -> np.ndarray:
    """Each face's normalising distance (N,) from its ground truth (N, 68, 2): `inter_pupil` (the
    benchmark's eye centres) or `inter_ocular` (outer eye corners)."""
    if normaliser == "inter_pupil":
        left, right = (truth[:, list(points)].mean(axis=1) for points in EYE_CENTRE_POINTS)
    elif normaliser == "inter_ocular":
        left, right = (truth[:, i] for i in OUTER_EYE_CORNERS)
    else:
        raise ValueError(f"unknown normaliser {normaliser!r}; choose one of {NORMALISERS}")
    return np.linalg.norm(left - right, axis=-1)


def face_errors(
    results: MethodResults, truth: np.ndarray, truth_occluded: np.ndarray, normaliser: str, subset: str
) -> np.ndarray:
    """Each face's error (N,) as `LandmarkLocalizationEval.m` computes it: NaN for a face without a
    result, and in the `visible` subset for a face with no visible point (MATLAB's mean of nothing)."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; choose one of {SUBSETS}")
    if results.points.shape != truth.shape:
        raise ValueError(
            f"{results.source}: results for {len(results.points)} faces, ground truth for {len(truth)}"
        )
    point_errors = np.linalg.norm(results.points - truth, axis=-1)  # (N, 68), NaN without a result
    if subset == "visible":
        point_errors = np.where(truth_occluded, np.nan, point_errors)
        counted = (~truth_occluded).sum(axis=1)
    else:
        counted = np.full(len(truth), NUM_POINTS)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counted > 0, np.nansum(point_errors, axis=1) / counted, np.nan)
    means[~results.has_result] = np.nan
    return means / normalising_distances(truth, normaliser)


def proportion_below(errors: np.ndarray, threshold: float) -> float:
    """Faces whose error is <= threshold, over all faces (`Main.m` l. 82): NaN counts as above."""
    errors = np.asarray(errors, dtype=np.float64)
    return float(np.sum(errors <= threshold) / len(errors)) if len(errors) else float("nan")


def occlusion_precision_recall(results: MethodResults, truth_occluded: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of the occluded class, as fractions, pooled over all points of the faces
    with a result (`LandmarkLocalizationEval.m` l. 40-55); NaN where the denominator is 0."""
    truth = truth_occluded[results.has_result]
    said = results.occluded[results.has_result]
    true_positives = float(np.sum(truth & said))
    said_occluded, occluded = float(said.sum()), float(truth.sum())
    precision = true_positives / said_occluded if said_occluded else float("nan")
    recall = true_positives / occluded if occluded else float("nan")
    return precision, recall


def score(
    results: MethodResults,
    truth: np.ndarray,
    truth_occluded: np.ndarray,
    thresholds: Sequence[float] = (FIGURE4_THRESHOLD, SUCCESS_THRESHOLD),
) -> dict[str, float]:
    """The benchmark's numbers for one method, as fractions: `<normaliser>/<subset>/nme` (the
    `nanmean` of face errors), `<normaliser>/<subset>/below_08` and `below_10` (the success rate at
    0.1), `occlusion_precision`, `occlusion_recall`, and the faces with a result and without."""
    values: dict[str, float] = {}
    for normaliser in NORMALISERS:
        for subset in SUBSETS:
            errors = face_errors(results, truth, truth_occluded, normaliser, subset)
            measured = errors[np.isfinite(errors)]
            values[f"{normaliser}/{subset}/nme"] = float(measured.mean()) if len(measured) else float("nan")
            for threshold in thresholds:
                key = f"{normaliser}/{subset}/below_{round(threshold * 100):02d}"
                values[key] = proportion_below(errors, threshold)
    values["occlusion_precision"], values["occlusion_recall"] = occlusion_precision_recall(
        results, truth_occluded
    )
    values["faces_with_result"] = float(results.faces_with_result)
    values["faces_without_result"] = float(len(truth) - results.faces_with_result)
    return values
