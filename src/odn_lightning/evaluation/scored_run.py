"""What `score` measures and writes: for each scored split, the suite's numbers (the data config's
normalisation, `metrics.LandmarkNME`) and, on COFW-68, the benchmark's own (`cofw68_benchmark`);
then metrics.json's keys, predictions.csv's rows, report.md and the CED plots, as eval writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import LandmarkDataset
from ..data.formats.cofw68 import read_cofw68_annotations
from ..data.records import OCCLUDED_BY_OBJECT, FaceRecord
from . import cofw68_benchmark as benchmark
from .calibration import DECISION_THRESHOLD
from .metrics import LandmarkNME
from .occlusion_output import figures
from .occlusion_scores import PREFIX, point_scores, state_scores
from .plots import plot_ced
from .report_files import PREDICTIONS_FILE, REPORT_FILE, write_predictions, write_report
from .reports import counts_as_metrics
from .scoring import SplitPredictions

# Where a benchmark checkout keeps the annotations (data.root may be such a checkout alone).
BENCHMARK_ANNOTATIONS = Path("COFW68_Data/test_annotations")


@dataclass
class SplitScore:
    """One split's numbers (`test/<split>/...` keys), predictions.csv rows and each face's NME."""

    metrics: dict[str, float]
    rows: list[dict]
    errors: np.ndarray
    benchmark: dict[str, float] = field(default_factory=dict)


def cofw68_annotations_dir(root: Path, source: Mapping) -> Path:
    """The COFW-68 annotation folder of a `{reader: cofw68}` source: its `points_dir` under data.root,
    else data.root as a checkout of the benchmark alone."""
    for candidate in (root / str(source.get("points_dir", "")), root / BENCHMARK_ANNOTATIONS):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"data.root={root} holds neither {source.get('points_dir')} nor {BENCHMARK_ANNOTATIONS}: give the "
        "data layout's root or a checkout of https://github.com/golnazghiasi/cofw68-benchmark"
    )


def cofw68_records(folder: Path, expected: int | None) -> list[FaceRecord]:
    """COFW-68's faces from its annotations alone; each record's image is its annotation file."""
    points, occluded = read_cofw68_annotations(folder, expected)
    return [
        FaceRecord(
            folder / f"{i}_points.mat",
            points[i - 1].astype(np.float32),
            np.where(occluded[i - 1], OCCLUDED_BY_OBJECT, 0).astype(np.uint8),
            annotation=str(folder / f"{i}_points.mat"),
        )
        for i in range(1, len(points) + 1)
    ]


def is_cofw68(sources: Sequence) -> bool:
    return len(sources) == 1 and isinstance(sources[0], Mapping) and sources[0].get("reader") == "cofw68"


def as_benchmark_results(predictions: SplitPredictions, name: str) -> benchmark.MethodResults:
    """A split's predictions as the benchmark's results: its 0/1 states where it has them, else its
    calibrated probabilities at DECISION_THRESHOLD, else no point called occluded (a raw score, whose
    sign is not even fixed, is never turned into states)."""
    occluded = predictions.occluded
    if occluded is None:
        probability = predictions.probability
        occluded = (
            probability >= DECISION_THRESHOLD
            if probability is not None
            else np.zeros(predictions.points.shape[:2], bool)
        )
    return benchmark.MethodResults(name, name, predictions.points, occluded, predictions.has_prediction)


def occlusion_numbers(
    predictions: SplitPredictions, keep: np.ndarray, occluded: torch.Tensor
) -> dict[str, float]:
    """The occlusion numbers of the faces `keep` against their flags, as a run logs them: from raw
    scores `landmark_occlusion_*`, from calibrated probabilities `occlusion_probability_*`, and from
    0/1 states the threshold pair alone; those not defined (NaN) left out, as a run leaves them out."""
    numbers: dict[str, float] = {}
    if predictions.occlusion_score is not None:
        raw = point_scores(torch.from_numpy(predictions.occlusion_score[keep]), occluded)
        numbers |= {PREFIX + name: value for name, value in raw.items()}
    if predictions.probability is not None:
        probability = torch.from_numpy(predictions.probability[keep])
        numbers |= {k: float(v) for k, v in figures(probability, occluded, DECISION_THRESHOLD).items()}
    if predictions.occluded is not None:
        states = state_scores(torch.from_numpy(predictions.occluded[keep]), occluded)
        numbers |= {PREFIX + name: value for name, value in states.items()}
    return {name: value for name, value in numbers.items() if not np.isnan(value)}


def score_split(
    split: str,
    records: list[FaceRecord],
    predictions: SplitPredictions,
    scheme,
    normalisation: str,
    thresholds: Sequence[float],
    cofw68: bool,
    name: str,
) -> SplitScore:
    """The split's numbers over its faces with a prediction (the rest counted as faces not scored)."""
    keep = np.flatnonzero(predictions.has_prediction)
    kept = [records[i] for i in keep]
    predicted = torch.from_numpy(predictions.points[keep].astype(np.float64))
    target = torch.from_numpy(np.stack([r.landmarks for r in kept]).astype(np.float64)) if kept else None
    metrics: dict[str, float] = counts_as_metrics({split: (len(kept), len(records))})
    rows: list[dict] = []
    errors = np.zeros(0)
    if kept:
        normaliser = {
            "normalising_box": torch.from_numpy(np.stack([LandmarkDataset.normalising_box(r) for r in kept])),
            "box_size": torch.tensor([LandmarkDataset.box_size(r) for r in kept], dtype=torch.float64),
        }
        visible = None
        if all(r.visible is not None for r in kept):
            visible = torch.from_numpy(np.stack([r.visible for r in kept]))
        metric = LandmarkNME(scheme, normalisation, tuple(thresholds))
        metric.update(predicted, target, visible=visible, index=torch.from_numpy(keep), **normaliser)
        metrics |= {f"test/{split}/{k}": float(v) for k, v in metric.compute().items()}
        if visible is not None:
            metrics |= {
                f"test/{split}/{k}": v for k, v in occlusion_numbers(predictions, keep, ~visible).items()
            }
        nme, distance = metric.per_face(predicted, target, **normaliser)
        errors = nme.numpy()
        for row, (i, record) in enumerate(zip(keep, kept, strict=True)):
            face = {
                "image_path": str(record.image_path),
                "split": split,
                "index": int(i),
                "normalising_distance": float(distance[row]),
                "nme": float(nme[row]),
                "predicted": predicted[row].numpy(),
                "target": target[row].numpy(),
            }
            if predictions.occlusion_score is not None:
                face["occlusion"] = predictions.occlusion_score[i]
            if predictions.probability is not None:
                face["probability"] = predictions.probability[i]
            rows.append(face)
    score = SplitScore(metrics, rows, errors)
    if cofw68:
        truth = np.stack([r.landmarks for r in records]).astype(np.float64)
        truth_occluded = np.stack([~r.visible for r in records])
        results = as_benchmark_results(predictions, name)
        score.benchmark = benchmark.score(results, truth, truth_occluded)
        metrics |= {f"test/{split}/benchmark/{k}": v for k, v in score.benchmark.items()}
    return score


def benchmark_markdown(split: str, numbers: Mapping[str, float]) -> list[str]:
    """report.md's section of the COFW-68 benchmark's own numbers for one split."""

    def pct(key: str) -> str:
        value = numbers[key]
        return "NaN" if np.isnan(value) else f"{value * 100:.2f}"

    lines = [
        f"## {split}: the COFW-68 benchmark's own rules",
        "",
        "| normaliser | points | NME (x10^-2) | below 0.08 (%) | success rate at 0.1 (%) |",
        "|---|---|---|---|---|",
    ]
    for normaliser in benchmark.NORMALISERS:
        for subset in benchmark.SUBSETS:
            prefix = f"{normaliser}/{subset}"
            lines.append(
                f"| {normaliser} | {subset} | {pct(prefix + '/nme')} | {pct(prefix + '/below_08')} | "
                f"{pct(prefix + '/below_10')} |"
            )
    lines += [
        "",
        f"Occlusion (all points of the faces with a result, pooled): precision {pct('occlusion_precision')} %, "
        f"recall {pct('occlusion_recall')} %. Faces with a result: {int(numbers['faces_with_result'])}, "
        f"without: {int(numbers['faces_without_result'])}.",
        "",
        "inter_pupil: the eye centres (mean of points 37-42 and 43-48, 1-based), as the benchmark's Main.m; "
        "inter_ocular: the outer eye corners (37, 46). A face without a result counts in the mean NME "
        "not at all (Main.m's nanmean) and as a failure below any threshold (Main.m l. 82). NaN: 0 / 0 "
        "(a method that calls no point occluded has no precision).",
        "",
    ]
    return lines


def write_outputs(
    output_dir: Path,
    scores: Mapping[str, SplitScore],
    thresholds: Sequence[float],
    facts: Mapping[str, str],
    normalisations: Mapping[str, str],
) -> dict[str, float]:
    """predictions.csv, ced.png (and ced_<split>.png), report.md; returns metrics.json's numbers."""
    metrics: dict[str, float] = {}
    rows: list[dict] = []
    for split_score in scores.values():
        metrics |= split_score.metrics
        rows += split_score.rows
    write_predictions(rows, output_dir / PREDICTIONS_FILE)
    threshold = max(thresholds)
    pictures = []
    for split, split_score in scores.items():
        name = f"ced_{split}.png"
        plot_ced(
            {split: split_score.errors},
            threshold,
            output_dir / name,
            title=split,
            normalisation=normalisations[split],
        )
        pictures.append(name)
    write_report(
        output_dir / REPORT_FILE,
        metrics,
        list(scores),
        thresholds,
        facts,
        pictures,
        truncated_by="the predictions file has no prediction for the other faces",
        sections=[
            line
            for split, s in scores.items()
            if s.benchmark
            for line in benchmark_markdown(split, s.benchmark)
        ],
    )
    return metrics
