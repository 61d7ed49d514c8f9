"""An evaluation's COFW-68 predictions in the benchmark's own result format (`cofw68_results.txt` in
the run directory), so that a run can be dropped into the benchmark's `Main.m` unchanged.

Each face is matched to its benchmark index by its ground truth (the annotation file whose points
equal predictions.csv's to 0.01 px), so faces left out (`data.on_bad_sample=skip`) or not evaluated
(`trainer.limit_test_batches`) never shift the others; the benchmark counts a face without a result
as a failure. Occlusion states: the network's calibrated occlusion probability at `DECISION_THRESHOLD`
where the checkpoint has a calibration, else no point called occluded (a raw 1 - P, whose sign nothing
fixes, is never turned into states; the benchmark then has no precision for the run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..data.formats.cofw68 import read_cofw68_annotations
from .calibration import DECISION_THRESHOLD
from .cofw68_benchmark import write_results
from .report_files import PREDICTIONS_FILE, read_predictions
from .scored_run import cofw68_annotations_dir, is_cofw68
from .scoring import SAME_TRUTH_PX, PredictionsError

RESULTS_FILE = "cofw68_results.txt"


def benchmark_indices(targets: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The 1-based benchmark index of each face (targets (N, 68, 2), truth (M, 68, 2), 0-based px)."""
    indices = []
    for target in targets:
        offsets = np.abs(truth - target).reshape(len(truth), -1).max(axis=1)
        best = int(np.argmin(offsets))
        if not offsets[best] <= SAME_TRUTH_PX:
            raise PredictionsError(
                f"a COFW-68 face's ground truth matches no annotation file (nearest {offsets[best]:.3g} px away)"
            )
        indices.append(best + 1)
    return np.asarray(indices)


def write_cofw68_results(
    rows: Mapping[str, np.ndarray], annotations: Path, path: Path
) -> tuple[Path, int, int]:
    """`path` in the benchmark's format from a split's rows of predictions.csv (`report_files.read_predictions`);
    returns it, the faces written and the benchmark's faces."""
    truth, _ = read_cofw68_annotations(annotations)
    indices = benchmark_indices(rows["target"], truth)
    scores = rows.get("probability")
    occluded = (
        scores >= DECISION_THRESHOLD if scores is not None else np.zeros(rows["predicted"].shape[:2], bool)
    )
    order = np.argsort(indices)
    write_results(path, rows["predicted"][order], occluded[order], indices[order])
    return path, len(indices), len(truth)


def write_benchmark_files(
    root: Path, splits: Mapping[str, Sequence], evaluated: Sequence[str], output_dir: Path
) -> list[str]:
    """For each evaluated split read by the COFW-68 reader, its results file in `output_dir`
    (`cofw68_results.txt`, or `<split>_cofw68_results.txt` beside another); one line each to report."""
    lines = []
    chosen = [s for s in evaluated if s in splits and is_cofw68(list(splits[s]))]
    predictions = output_dir / PREDICTIONS_FILE
    by_split = read_predictions(predictions) if chosen and predictions.is_file() else {}
    for split in chosen:
        if split not in by_split:
            continue
        name = RESULTS_FILE if len(chosen) == 1 else f"{split}_{RESULTS_FILE}"
        annotations = cofw68_annotations_dir(root, dict(splits[split][0]))
        path, written, total = write_cofw68_results(by_split[split], annotations, output_dir / name)
        lines.append(f"{path} ({written} of {total} faces, the COFW-68 benchmark's result format)")
    return lines
