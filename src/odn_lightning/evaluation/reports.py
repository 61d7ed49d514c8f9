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

from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ..datatypes import Batch, EvalStepOutput
from ..training.callbacks import RUN_CONFIG_KEY
from ..training.checkpoints import read_weights_only
from .metrics import describe_normalisation, normalisation_for
from .plots import plot_ced, save_png
from .report_files import PREDICTIONS_FILE, REPORT_FILE, write_predictions, write_report
from .report_pictures import (
    batch_faces,
    face_pictures,
    gather,
    log_image,
    network_fact,
    network_name,
    prediction_picture,
    worst_first,
    worst_rank,
)

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
            "limits": limits_fact(trainer),
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


TRAINING_LIMITS = ("max_epochs", "max_steps", "limit_train_batches", "limit_val_batches")


def limits_fact(trainer: L.Trainer) -> str:
    """report.md's limits line: the test's batch limit, and those the tested weights were trained under:
    the tested checkpoint's run (its stored config), else this trainer's."""
    stored = None
    if trainer.ckpt_path and Path(trainer.ckpt_path).is_file():
        checkpoint = read_weights_only(trainer.ckpt_path, mmap=True)
        stored = (checkpoint.get(RUN_CONFIG_KEY) or {}).get("trainer")
    if isinstance(stored, dict):
        source, values = "the checkpoint's run", {key: stored.get(key) for key in TRAINING_LIMITS}
    else:
        source, values = "this run", {key: getattr(trainer, key, None) for key in TRAINING_LIMITS}
    training = ", ".join(f"trainer.{key}={'null' if v is None else v}" for key, v in values.items())
    return f"test trainer.limit_test_batches={trainer.limit_test_batches}; training ({source}) {training}"


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
