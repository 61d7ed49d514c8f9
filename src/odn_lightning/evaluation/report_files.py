"""The files an evaluation writes beside its numbers, as data: `predictions.csv` (every face's points,
NME and occlusion scores; written and read back) and `report.md` (the paper's table with the occlusion
numbers, the truncated splits said to be). `reports.EvaluationReport` writes them at the end of a test.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import ENCODING, ERRORS, atomic_open, atomic_write_text
from .metrics import threshold_suffix
from .occlusion_scores import DECISION_THRESHOLD
from .occlusion_scores import LEGEND as OCCLUSION_DETECTION_LEGEND
from .plots import plot_ced

PREDICTIONS_FILE = "predictions.csv"
REPORT_FILE = "report.md"


# ------------------------------------------------------------------------------- predictions.csv


FACE_COLUMNS = ["image_path", "split", "index", "normalising_distance", "nme"]


def point_columns(prefix: str, num_landmarks: int) -> list[str]:
    """`pred` or `gt` x, y columns of every point: pred_x0, pred_y0, pred_x1, ..."""
    return [f"{prefix}_{axis}{i}" for i in range(num_landmarks) for axis in "xy"]


def occlusion_columns(num_landmarks: int) -> list[str]:
    """Each point's occlusion score: occ_score0, occ_score1, ..."""
    return [f"occ_score{i}" for i in range(num_landmarks)]


def probability_columns(num_landmarks: int) -> list[str]:
    """Each point's calibrated probability of being occluded: occ_prob0, occ_prob1, ..."""
    return [f"occ_prob{i}" for i in range(num_landmarks)]


def write_predictions(rows: Sequence[Mapping], path: Path) -> Path:
    """rows: image_path, split, index, normalising_distance, nme, predicted (L, 2), target (L, 2) in pixels,
    and optionally occlusion (L,), each point's raw occlusion score 1 - P, and probability (L,), its
    calibrated probability of being occluded (each written when every row has it). Written atomically,
    UTF-8 with surrogate escapes: a non-UTF-8 image path is kept byte for byte."""
    num_landmarks = len(rows[0]["predicted"]) if rows else 0
    scores = bool(rows) and all("occlusion" in row for row in rows)
    probabilities = bool(rows) and all("probability" in row for row in rows)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            FACE_COLUMNS
            + point_columns("pred", num_landmarks)
            + point_columns("gt", num_landmarks)
            + (occlusion_columns(num_landmarks) if scores else [])
            + (probability_columns(num_landmarks) if probabilities else [])
        )
        for row in rows:
            values = [row["predicted"].ravel(), row["target"].ravel()]
            values += [np.asarray(row["occlusion"]).ravel()] if scores else []
            values += [np.asarray(row["probability"]).ravel()] if probabilities else []
            points = [f"{v:.6f}" for v in np.concatenate(values)]
            writer.writerow(
                [
                    row["image_path"],
                    row["split"],
                    row["index"],
                    f"{row['normalising_distance']:.6f}",
                    f"{row['nme']:.8f}",
                ]
                + points
            )
    return path


def read_predictions(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """predictions.csv by split: `image_path`, `index`, `normalising_distance`, `nme` (N,), `predicted` and
    `target` (N, L, 2) in original pixels, `occlusion` (N, L), each point's raw occlusion score, where
    the file has it (networks with the distillation module), and `probability` (N, L), its calibrated
    probability of being occluded, where the file has it (checkpoints with a calibration)."""
    with Path(path).open(encoding=ENCODING, errors=ERRORS, newline="") as f:
        rows = list(csv.DictReader(f))
    by_split: dict[str, dict[str, np.ndarray]] = {}
    if not rows:
        return by_split
    num_landmarks = sum(1 for column in rows[0] if column.startswith("pred_x"))
    pred_columns, gt_columns = point_columns("pred", num_landmarks), point_columns("gt", num_landmarks)
    for split in dict.fromkeys(row["split"] for row in rows):
        chosen = [row for row in rows if row["split"] == split]
        by_split[split] = {
            "image_path": np.array([row["image_path"] for row in chosen]),
            "index": np.array([int(row["index"]) for row in chosen]),
            "normalising_distance": np.array([float(row["normalising_distance"]) for row in chosen]),
            "nme": np.array([float(row["nme"]) for row in chosen]),
            "predicted": np.array([[float(row[c]) for c in pred_columns] for row in chosen]).reshape(
                -1, num_landmarks, 2
            ),
            "target": np.array([[float(row[c]) for c in gt_columns] for row in chosen]).reshape(
                -1, num_landmarks, 2
            ),
        }
        if "occ_score0" in rows[0]:
            scores = occlusion_columns(num_landmarks)
            by_split[split]["occlusion"] = np.array([[float(row[c]) for c in scores] for row in chosen])
        if "occ_prob0" in rows[0]:
            columns = probability_columns(num_landmarks)
            by_split[split]["probability"] = np.array([[float(row[c]) for c in columns] for row in chosen])
    return by_split


def overlay_ced(
    runs: Mapping[str, str | Path],
    split: str,
    threshold: float,
    path: str | Path,
    title: str | None = None,
    normalisation: str | None = None,
) -> Path:
    """The CED curves of several runs on one split, overlaid: runs maps a label to a run directory
    holding a predictions.csv; `normalisation` names what divided their errors on the x axis. A run
    without that split is listed as having no faces."""
    curves = {}
    for label, run in runs.items():
        faces = read_predictions(Path(run) / PREDICTIONS_FILE).get(split)
        curves[label] = faces["nme"] if faces is not None else np.zeros(0)
    return plot_ced(curves, threshold, path, title=title or split, normalisation=normalisation)


# ------------------------------------------------------------------------------------- report.md


def truncated_splits(
    metrics: Mapping[str, float | None], splits: Sequence[str]
) -> dict[str, tuple[int, int]]:
    """Splits evaluated only in part: split -> (faces evaluated, faces in the split)."""
    out = {}
    for split in splits:
        faces = metrics.get(f"test/{split}/faces")
        in_split = metrics.get(f"test/{split}/faces_in_split")
        if faces is not None and in_split is not None and faces < in_split:
            out[split] = (int(faces), int(in_split))
    return out


# The occlusion numbers report.md shows where measured: metric -> column.
OCCLUSION_COLUMNS = {
    "nme_occluded": "NME occluded (x10^-2)",
    "nme_visible": "NME visible (x10^-2)",
    "occluder_auroc": "occluder AUROC",
    "occluder_auroc_face": "occluder AUROC in face",
    "face_auroc": "face AUROC",
    "landmark_occlusion_auroc": "landmark occlusion AUROC",
    "landmark_occlusion_precision": f"occlusion precision@{DECISION_THRESHOLD:g} (%)",
    "landmark_occlusion_recall": f"occlusion recall@{DECISION_THRESHOLD:g} (%)",
    "landmark_occlusion_recall_at_p80": "occlusion recall@80% precision (%)",
    "landmark_occlusion_ap": "occlusion AP",
    "occlusion_probability_auroc": "calibrated occlusion AUROC",
    "occlusion_probability_ap": "calibrated occlusion AP",
    "occlusion_probability_precision": "calibrated occlusion precision (%)",
    "occlusion_probability_recall": "calibrated occlusion recall (%)",
    "occlusion_probability_recall_at_p80": "calibrated occlusion recall@80% precision (%)",
}
# Those shown as fractions (4 digits) rather than percentages.
FRACTION_COLUMNS = {k for k in OCCLUSION_COLUMNS if "auroc" in k or k.endswith("_ap")}


CALIBRATED_LEGEND = (
    "Calibrated occlusion: the probability that a point is occluded, from its raw score (1 - P, or the "
    "visibility head's sigmoid where the network has one) by the "
    "calibration fitted on the validation split's flags at the checkpoint's epoch (Platt scaling, "
    "its direction learnt: an inverted P reads the right way round); the numbers the suite outputs "
    "(predictions.csv's occ_prob, predict, the exported model). AUROC, AP and recall@80% precision "
    "exact (unbinned); precision and recall at the calibration's decision threshold (probability >= 0.5)."
)


AUROC_LEGEND = (
    "AUROCs of the distillation module's occlusion map P, up-sampled bilinearly to the crop: the "
    "probability that a positive scores above a negative, ties counting half, scores rounded down to "
    "steps of 0.005 (0.5: chance, 1: perfect). Face region: the pixels whose centre lies inside the "
    "convex hull of the ground-truth landmarks. Occluder AUROC: 1 - P against the occluder mask over "
    "every pixel of the crop (background counts as not occluded). Occluder AUROC in face: the same over "
    "the face region only. Face AUROC: P against the face region (face pixels positive) over every "
    "pixel of the crop: above 0.5 when P is higher on the face than on the background. Landmark "
    "occlusion AUROC: 1 - P read bilinearly at each ground-truth landmark (or the visibility head's "
    "sigmoid) against the points annotated "
    'occluded, over the faces with visibility flags. "-": not measured (no occluder masks or '
    "visibility flags, or no positive or no negative among them)."
)


def report_table(
    metrics: Mapping[str, float | None], splits: Sequence[str], thresholds: Sequence[float]
) -> str:
    """The paper's table (NME x 10^-2 per split), with AUC and failure rate (%) at each threshold,
    the mean-shape baseline and, where measured, the occlusion numbers. "-": not measured; "NaN": not
    finite (a failed face makes a split's NME NaN); faces "8 of 12 (truncated)": evaluated in part."""
    header = ["split", "faces", "NME (x10^-2)"]
    for t in thresholds:
        header += [f"AUC@{t:g}", f"FR@{t:g} (%)"]
    header += ["mean-shape NME (x10^-2)"]
    shown = [k for k in OCCLUSION_COLUMNS if any(f"test/{s}/{k}" in metrics for s in splits)]
    header += [OCCLUSION_COLUMNS[k] for k in shown]

    def cell(split: str, key: str, scale: float = 1.0, digits: int = 2) -> str:
        key = f"test/{split}/{key}"
        if key not in metrics:
            return "-"
        value = metrics[key]
        return "NaN" if value is None or math.isnan(value) else f"{value * scale:.{digits}f}"

    truncated = truncated_splits(metrics, splits)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for split in splits:
        faces = cell(split, "faces", digits=0)
        if split in truncated:
            faces = "{} of {} (truncated)".format(*truncated[split])
        row = [split, faces, cell(split, "nme", 100)]
        for t in thresholds:
            suffix = threshold_suffix(t)
            row += [cell(split, f"auc_{suffix}", digits=4), cell(split, f"fr_{suffix}", 100)]
        row += [cell(split, "nme_mean_shape", 100)]
        row += [cell(split, k, digits=4) if k in FRACTION_COLUMNS else cell(split, k, 100) for k in shown]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    path: Path,
    metrics: Mapping[str, float],
    splits: Sequence[str],
    thresholds: Sequence[float],
    facts: Mapping[str, str],
    pictures: Sequence[str],
    truncated_by: str = "trainer.limit_test_batches stopped the evaluation early",
    sections: Sequence[str] = (),
) -> Path:
    """report.md, written atomically; a line above the table names the splits evaluated only in part
    and what cut them short (`truncated_by`); `sections`, lines of Markdown, follow the pictures."""
    lines = ["# Evaluation report", ""]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    truncated = truncated_splits(metrics, splits)
    if truncated:
        parts = ", ".join(f"{s} ({faces} of {total} faces)" for s, (faces, total) in truncated.items())
        lines += [
            "",
            f"**Truncated splits**: {parts}. {truncated_by}: their numbers are of the faces "
            "evaluated only, not of the benchmark.",
        ]
    unlocated = {s: metrics.get(f"test/{s}/points_without_position") for s in splits}
    if any(unlocated.values()):
        counts = ", ".join(f"{s} {int(n)}" for s, n in unlocated.items() if n)
        lines += [
            "",
            f"**Points without a position** (self-occluded, no location annotated): {counts}; left out "
            "of every NME and occlusion number below.",
        ]
    lines += ["", report_table(metrics, splits, thresholds)]
    lines += [
        "NME: mean point-to-point error divided by the normalising distance, averaged over faces (x10^-2 as "
        "in the paper's tables). AUC: area under the CED curve up to the threshold, divided by it. FR: "
        "faces whose NME exceeds the threshold. NME occluded / visible: each face's mean normalised error "
        "over its points annotated occluded / visible, averaged over the faces that have such points (as "
        "the COFW-68 benchmark does).",
        "",
    ]
    if any(f"test/{s}/{k}" in metrics for s in splits for k in OCCLUSION_COLUMNS if "auroc" in k):
        lines += [AUROC_LEGEND, ""]
    if any(
        f"test/{s}/landmark_occlusion_{k}" in metrics for s in splits for k in ("precision", "recall", "ap")
    ):
        lines += [OCCLUSION_DETECTION_LEGEND, ""]
    if any(f"test/{s}/occlusion_probability_auroc" in metrics for s in splits):
        lines += [CALIBRATED_LEGEND, ""]
    lines += [f"![{name}]({name})" for name in pictures]
    lines += ["", *sections] if sections else []
    return atomic_write_text(path, "\n".join(lines) + "\n")
