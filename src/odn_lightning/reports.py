"""What an evaluation leaves in its run directory, and the pictures runs log.

`EvaluationReport` (a Lightning callback, on for `eval` and for the test phase of `train`) writes
`predictions.csv` (every face: image, split, normalising distance, NME, predicted and ground-truth
points in original pixels and, for networks with the distillation module, each point's occlusion
score 1 - P), `ced_<split>.png` and `ced.png` (all splits overlaid), `report.md` (the
paper's table: NME x 10^-2, AUC, FR, occlusion numbers), `predictions_<split>.png` (the split's first
faces, ground truth and prediction), `worst_<split>.png` (its faces with the highest NME) and, for
networks with the distillation module, `figure6_<split>.png` (the first faces' crop, P, crop x P).
Every picture names the network (as Table 4 does: `network_name`) and the split, and the NME's
normaliser where it shows NMEs; report.md names the evaluated checkpoint.
`ValidationPictures` logs a prediction grid (and a Figure-6 panel) each validation epoch.
Pictures go to W&B and TensorBoard when those loggers are on. Every file is written atomically.

A split evaluated only in part (`trainer.limit_test_batches`) is said to be: report.md marks it, and
its faces evaluated and faces in the split reach metrics.json through the trainer's metrics.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from .atomic import ENCODING, ERRORS, atomic_open, atomic_write_text
from .crop import from_normalised
from .datatypes import Batch, EvalStepOutput
from .evaluation.occlusion_panels import figure6_figure, occlusion_probability_picture
from .evaluation.occlusion_scores import DECISION_THRESHOLD
from .evaluation.occlusion_scores import LEGEND as OCCLUSION_DETECTION_LEGEND
from .imagenet import denormalise_image
from .metrics import describe_normalisation, normalisation_for, threshold_suffix
from .plots import plot_ced, prediction_figure, render_rgb, save_png

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


# -------------------------------------------------------------------------------------- pictures


def log_image(trainer: L.Trainer, key: str, image: np.ndarray, step: int | None = None) -> None:
    """An RGB picture to every logger that takes pictures (W&B, TensorBoard)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step or 0, dataformats="HWC")


def batch_faces(batch: Batch, outputs: EvalStepOutput, chosen: Sequence[int]) -> list[dict]:
    """The faces at positions `chosen` of a batch, as the pictures show them: each a dict of `image`
    (H, W, 3) uint8, the crop; `predicted` and `target` (L, 2) in the crop's pixels; `nme` and `index`;
    and, where the batch or the network has them, `occlusion_map` P (h, w), `occluder_mask` (H, W) and
    `visible` (L,) bool (only where every face of the batch has visibility flags)."""
    chosen = [int(i) for i in chosen]
    if not chosen:
        return []
    size = batch["image"].shape[-1]
    images = [denormalise_image(batch["image"][i].float().cpu().numpy()) for i in chosen]
    predicted = from_normalised(outputs["landmarks"][chosen].detach().float().cpu().numpy(), size)
    target = from_normalised(batch["landmarks"][chosen].float().cpu().numpy(), size)
    nme = outputs["nme"][chosen].detach().cpu().numpy()
    faces = [
        {
            "image": images[k],
            "predicted": predicted[k],
            "target": target[k],
            "nme": float(nme[k]),
            "index": int(batch["index"][i]),
        }
        for k, i in enumerate(chosen)
    ]
    if "occlusion_map" in outputs:
        maps = outputs["occlusion_map"][chosen, 0].detach().float().cpu().numpy()
        for face, occlusion in zip(faces, maps, strict=True):
            face["occlusion_map"] = occlusion
    if "occlusion_probability" in outputs:
        probabilities = outputs["occlusion_probability"][chosen].detach().float().cpu().numpy()
        for face, probability in zip(faces, probabilities, strict=True):
            face["occlusion_probability"] = probability
    if "occluder_mask" in batch:
        for face, mask in zip(faces, batch["occluder_mask"][chosen].cpu().numpy(), strict=True):
            face["occluder_mask"] = mask
    if bool(torch.as_tensor(batch["has_visibility"]).all()):
        for face, flags in zip(faces, batch["visible"][chosen].cpu().numpy().astype(bool), strict=True):
            face["visible"] = flags
    return faces


def worst_rank(face: Mapping) -> tuple[float, int]:
    """A face's place among the worst (lower: worse): highest NME first, a face without a finite NME
    (a failure) before any, ties by face index."""
    nme = face["nme"]
    return (-nme if math.isfinite(nme) else -math.inf, face["index"])


def worst_first(faces: Sequence[Mapping], count: int) -> list[Mapping]:
    """The `count` faces with the highest NME, in `worst_rank` order; a face seen twice (DDP pads its
    last batch with faces already seen) is kept once."""
    unique = {face["index"]: face for face in faces}.values()
    return sorted(unique, key=worst_rank)[:count]


def face_captions(faces: Sequence[Mapping]) -> list[str]:
    """Each face's index in its split (predictions.csv's `index`) and NME."""
    return [
        f"face {face['index']}: NME {face['nme']:.3f}"
        if math.isfinite(face["nme"])
        else f"face {face['index']}: NME not finite"
        for face in faces
    ]


def prediction_picture(faces: Sequence[Mapping], title: str) -> np.ndarray:
    """The faces' crops with ground truth and prediction, each under its index and NME."""
    flags = [face.get("visible") for face in faces]
    visible = None
    if any(f is not None for f in flags):
        # A face without flags shows all its points as visible, as the pixels metrics count them.
        visible = np.stack(
            [
                f if f is not None else np.ones(len(face["target"]), bool)
                for f, face in zip(flags, faces, strict=True)
            ]
        )
    figure = prediction_figure(
        np.stack([face["image"] for face in faces]),
        np.stack([face["predicted"] for face in faces]),
        np.stack([face["target"] for face in faces]),
        captions=face_captions(faces),
        visible=visible,
        title=title,
    )
    return render_rgb(figure)


def figure6_picture(faces: Sequence[Mapping], title: str) -> np.ndarray:
    """The paper's Figure 6 of the faces (which must carry an `occlusion_map`), one a row."""
    figure = figure6_figure(
        np.stack([face["image"] for face in faces]),
        np.stack([face["occlusion_map"] for face in faces]),
        [face.get("occluder_mask") for face in faces],
        [face["target"] for face in faces],
        [face.get("visible") for face in faces],
        title=title,
        row_labels=[f"face {face['index']}" for face in faces],
    )
    return render_rgb(figure)


def network_name(pl_module: L.LightningModule) -> str:
    """The network as the paper's Table 4 names it (`ODN.variant`: BRNet, +GM+DM, ODN (GM+LM+DM), ...),
    "w/o L1" added where the objective leaves P unpenalised (eta = 0); else its class name."""
    net = getattr(pl_module, "net", pl_module)
    name = getattr(net, "variant", type(net).__name__)
    objective = getattr(pl_module, "objective", None)
    if getattr(net, "use_dm", False) and getattr(objective, "eta", None) == 0:
        name += " w/o L1"
    return name


def network_fact(pl_module: L.LightningModule) -> str:
    """report.md's network line: its name and the class and switches that built it."""
    net = getattr(pl_module, "net", pl_module)
    return f"{network_name(pl_module)} (class {type(net).__name__}: {net.extra_repr()})"


def face_pictures(
    faces: Sequence[Mapping], heading: str, what: str, normalisation: str
) -> dict[str, np.ndarray]:
    """A prediction grid of the faces and, where the network gives an occlusion map, their Figure-6
    panels, and where it has a calibrated occlusion output, its panels: kind -> RGB picture, titled `heading` (network, split) and `what` the faces are."""
    pictures = {
        "predictions": prediction_picture(faces, f"{heading}: {what}\nNME normalised by {normalisation}")
    }
    if all("occlusion_map" in face for face in faces):
        pictures["figure6"] = figure6_picture(faces, f"{heading}: occlusion map P\nof {what}")
    if all("occlusion_probability" in face for face in faces):
        pictures["occlusion"] = occlusion_probability_picture(
            faces, f"{heading}: calibrated occlusion\nof {what}"
        )
    return pictures


def gather(objects: list) -> list:
    """Every process's objects, on every process (a no-op without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return objects
    gathered: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, objects)
    return [item for part in gathered for item in part]


# ------------------------------------------------------------------------------------- callbacks


class EvaluationReport(L.Callback):
    """Writes predictions.csv, CED plots, report.md and pictures of the test splits (see module doc).

    Args:
        output_dir: the run directory.
        thresholds: NME thresholds of the CED plots and the table (the module's `nme_thresholds`).
        nme_normalisation: what divided the errors (one name or a per-split mapping), as report.md states it.
        data: the dataset, as report.md names it.
        pictures: faces per picture (the first faces' prediction grid and Figure-6 panels, the
            worst faces' grid); 0 for none.

    After a test run, `worst_faces` maps each split to the indices of the faces of `worst_<split>.png`,
    highest NME first, and `split_counts` maps each split to (faces evaluated, faces in the split, or None
    where its dataset's length is unknown), also put among the trainer's metrics as `test/<split>/faces`
    and `test/<split>/faces_in_split`.
    """

    def __init__(
        self,
        output_dir: str,
        thresholds: Sequence[float],
        nme_normalisation: str | Mapping[str, str],
        data: str,
        pictures: int = 8,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.thresholds = tuple(thresholds)
        self.nme_normalisation = nme_normalisation
        self.data = data
        self.pictures = pictures
        # What report.md names as the weights where the test does not load them from a checkpoint file.
        self.checkpoint: str | None = None
        self.rows: list[dict] = []
        self.first_faces: dict[str, list[dict]] = {}
        self.worst_candidates: dict[str, list[dict]] = {}
        self.worst_faces: dict[str, list[int]] = {}
        self.dataloader_splits: dict[int, str] = {}
        self.split_counts: dict[str, tuple[int, int | None]] = {}

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.rows, self.dataloader_splits, self.split_counts = [], {}, {}
        self.first_faces, self.worst_candidates, self.worst_faces = {}, {}, {}

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: EvalStepOutput,
        batch: Batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        split = batch["split"][0]
        self.dataloader_splits.setdefault(dataloader_idx, split)
        target = batch["target_px"].to(torch.float64).cpu().numpy()
        distance = outputs["normalising_distance"].detach().cpu().numpy()
        predicted = outputs["predicted_px"].detach().to(torch.float64).cpu().numpy()
        nme = outputs["nme"].detach().cpu().numpy()
        occlusion, probability = (outputs.get(k) for k in ("landmark_occlusion", "occlusion_probability"))
        occlusion = occlusion.detach().float().cpu().numpy() if occlusion is not None else None
        probability = probability.detach().float().cpu().numpy() if probability is not None else None
        for i in range(len(nme)):
            row = {
                "image_path": batch["image_path"][i],
                "split": split,
                "index": int(batch["index"][i]),
                "normalising_distance": float(distance[i]),
                "nme": float(nme[i]),
                "predicted": predicted[i],
                "target": target[i],
            }
            if occlusion is not None:
                row["occlusion"] = occlusion[i]
            if probability is not None:
                row["probability"] = probability[i]
            self.rows.append(row)
        if self.pictures > 0:
            if split not in self.first_faces and trainer.is_global_zero:
                self.first_faces[split] = batch_faces(batch, outputs, range(min(self.pictures, len(nme))))
            self._keep_worst(split, batch, outputs, nme)

    def _keep_worst(self, split: str, batch: Batch, outputs: EvalStepOutput, nme: np.ndarray) -> None:
        """The split's `pictures` worst faces so far, this batch's included; only the faces that
        rank above the last one kept are copied out of the batch."""
        kept = self.worst_candidates.get(split, [])
        scores = [{"nme": float(e), "index": int(i)} for e, i in zip(nme, batch["index"], strict=True)]
        chosen = [
            k
            for k, face in enumerate(scores)
            if len(kept) < self.pictures or worst_rank(face) <= worst_rank(kept[-1])
        ]
        faces = batch_faces(batch, outputs, chosen)
        self.worst_candidates[split] = worst_first([*kept, *faces], self.pictures)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        rows = gather(self.rows)
        # Every process's worst faces: the split's worst are among them.
        candidates = gather(
            [face | {"split": s} for s, faces in self.worst_candidates.items() for face in faces]
        )
        if not trainer.is_global_zero:
            return
        # DistributedSampler pads the last batch with faces already seen: keep each face once.
        unique = {(row["split"], row["index"]): row for row in rows}
        splits = list(dict.fromkeys(row["split"] for row in rows))
        rows = sorted(unique.values(), key=lambda row: (splits.index(row["split"]), row["index"]))
        errors = {s: np.array([r["nme"] for r in rows if r["split"] == s]) for s in splits}
        in_split = self._faces_in_split(trainer)
        self.split_counts = {s: (len(e), in_split.get(s)) for s, e in errors.items()}
        # Also among the trainer's metrics: they reach the main process from spawned DDP workers.
        counts = counts_as_metrics(self.split_counts)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in counts.items()})
        write_predictions(rows, self.output_dir / PREDICTIONS_FILE)

        threshold = max(self.thresholds)
        network = network_name(pl_module)
        pictures = []
        for split in splits:
            plot_ced(
                {split: errors[split]},
                threshold,
                self.output_dir / f"ced_{split}.png",
                title=f"{network}, {split}",
                normalisation=normalisation_for(self.nme_normalisation, split),
            )
        if splits:
            plot_ced(
                errors,
                threshold,
                self.output_dir / "ced.png",
                title=f"{network}, all test splits",
                normalisation=describe_normalisation(self.nme_normalisation),
            )
            pictures.append("ced.png")
        for split in splits:
            pictures += self._write_pictures(trainer, split, network, candidates, len(errors[split]))

        # The face counts are among them (added above).
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        facts = {
            "checkpoint": str(trainer.ckpt_path or self.checkpoint or "(weights in memory)"),
            "network": network_fact(pl_module),
            "data": self.data,
            "NME normalisation": describe_normalisation(self.nme_normalisation),
            "predictions": PREDICTIONS_FILE,
        }
        limit = trainer.limit_test_batches  # an int counts batches, a float is a fraction
        every_batch = isinstance(limit, float) and limit >= 1.0
        skipped = (
            "faces that failed to load were skipped (data.on_bad_sample=skip; see bad_samples_<split>.txt)"
        )
        cause = (
            skipped
            if every_batch
            else f"trainer.limit_test_batches={limit} stopped the evaluation early, or {skipped}"
        )
        write_report(self.output_dir / REPORT_FILE, metrics, splits, self.thresholds, facts, pictures, cause)

    def _write_pictures(
        self, trainer: L.Trainer, split: str, network: str, candidates: Sequence[Mapping], faces: int
    ) -> list[str]:
        """predictions_<split>.png, figure6_<split>.png and occlusion_<split>.png (calibrated occlusion) of
        the split's first faces, worst_<split>.png
        of its `pictures` faces with the highest NME (of all `faces` evaluated): their names."""
        heading = f"{network}, {split}"
        normalisation = normalisation_for(self.nme_normalisation, split)
        drawn = {}
        if self.first_faces.get(split):
            first = self.first_faces[split]
            drawn = face_pictures(first, heading, f"the first {len(first)} faces", normalisation)
        worst = worst_first([face for face in candidates if face["split"] == split], self.pictures)
        self.worst_faces[split] = [face["index"] for face in worst]
        if worst:
            what = (
                f"the {len(worst)} faces with the highest NME, of {faces}\nNME normalised by {normalisation}"
            )
            drawn["worst"] = prediction_picture(worst, f"{heading}: {what}")
        names = []
        for kind in ("predictions", "worst", "figure6", "occlusion"):
            if kind in drawn:
                name = f"{kind}_{split}.png"
                save_png(drawn[kind], self.output_dir / name)
                log_image(trainer, f"test/{split}/{kind}", drawn[kind])
                names.append(name)
        return names

    def _faces_in_split(self, trainer: L.Trainer) -> dict[str, int]:
        """Each seen split's length: that of the dataset of the test dataloader its batches came from."""
        loaders = trainer.test_dataloaders
        if loaders is not None and not isinstance(loaders, (list, tuple)):
            loaders = [loaders]
        sizes = {}
        for idx, split in self.dataloader_splits.items():
            dataset = getattr(loaders[idx], "dataset", None) if loaders and idx < len(loaders) else None
            if dataset is not None and hasattr(dataset, "__len__"):
                sizes[split] = len(dataset)
        return sizes


def counts_as_metrics(split_counts: Mapping[str, tuple[int, int | None]]) -> dict[str, float]:
    out = {}
    for split, (faces, in_split) in split_counts.items():
        out[f"test/{split}/faces"] = float(faces)
        if in_split is not None:
            out[f"test/{split}/faces_in_split"] = float(in_split)
    return out


class ValidationPictures(L.Callback):
    """A prediction grid (and Figure-6 panel) of the first validation faces, each validation epoch:
    logged to W&B / TensorBoard and saved under `<output_dir>/val_pictures/`."""

    def __init__(self, output_dir: str, count: int = 8) -> None:
        self.output_dir = Path(output_dir)
        self.count = count

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: EvalStepOutput,
        batch: Batch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx != 0 or self.count <= 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        split = batch["split"][0]
        setting = getattr(pl_module, "nme_normalisation", None)
        normalisation = normalisation_for(setting, split) if setting is not None else "its dataset's distance"
        faces = batch_faces(batch, outputs, range(min(self.count, len(batch["image"]))))
        heading = f"{network_name(pl_module)}, {split}, epoch {epoch}"
        what = f"the first {len(faces)} faces"
        for kind, image in face_pictures(faces, heading, what, normalisation).items():
            save_png(image, self.output_dir / "val_pictures" / f"{kind}_epoch{epoch:03d}.png")
            log_image(trainer, f"val/{kind}", image, step=trainer.global_step)
