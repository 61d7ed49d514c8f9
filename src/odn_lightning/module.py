"""The LightningModule: wires a landmark network, the objective, the metrics and the optimiser.

It does not care which network it wraps: any `nn.Module` whose forward returns a `NetworkOutput`
(`landmarks` (B, L, 2) in the crop frame, optionally `occlusion_map`) will do. Hydra builds its parts
(lightning-hydra-template style): the network and objective as objects, the optimiser and the
scheduler as partials (`_partial_: true`) that the module completes with its parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .crop import crop_to_original
from .datatypes import Batch, EvalStepOutput, NetworkOutput
from .losses import LandmarkObjective
from .metrics import (
    FaceAUROC,
    FaceOccluderAUROC,
    LandmarkNME,
    LandmarkOcclusionAUROC,
    OccluderAUROC,
    landmark_occlusion_scores,
    normalisation_for,
)
from .schemes import SchemeSpec, get_scheme

log = logging.getLogger(__name__)
ON_NON_FINITE = ("error", "skip")
HINT = "lower model.optimizer.lr, check the listed images, or skip such batches with model.on_non_finite=skip"


class NonFiniteError(FloatingPointError):
    """A training batch whose input, eq.-3 term or gradient is NaN or infinite; one line."""


class LandmarkModule(L.LightningModule):
    """Args:
    net: the landmark network.
    objective: eq. (3) by default (`LandmarkObjective`); called as objective(outputs, target, net).
    optimizer: a partial taking `params` (default: AdamW at lr 1e-3).
    scheduler: a partial taking `optimizer`; where it leaves `total_steps` null (a one-cycle
        schedule spans the whole run), the trainer's count of optimiser steps fills it.
    scheduler_interval: "step" or "epoch".
    scheme: the landmark scheme (point count, eye points of the NME): a name or a declaration
        (`odn_lightning.schemes.get_scheme`).
    nme_normalisation: what divides each face's error (`metrics.NORMALISATIONS`): one name, or a
        mapping from split names (and `default`) to names (`metrics.normalisation_for`).
    nme_thresholds: where AUC and failure rate are read.
    channels_last: NHWC convolutions (faster on CPUs and tensor-core GPUs).
    image_size: the crop side; given, Lightning's model summary runs one image through the network
        and shows its sizes and FLOPs.
    on_non_finite: what a training batch whose input, loss (any eq.-3 term) or gradient is not
        finite does: "error" stops the run naming the step, the term and the batch's images; "skip"
        leaves the weights untouched for that batch, logs the same line and counts it in
        `train/skipped_batches` (single process only: under DDP the other processes would wait for
        the skipping one's gradients, so use "error" there).
    """

    def __init__(
        self,
        net: nn.Module,
        objective: nn.Module | None = None,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "step",
        scheme: SchemeSpec = "ibug68",
        nme_normalisation: str | Mapping[str, str] = "inter_ocular",
        nme_thresholds: Sequence[float] = (0.08, 0.10),
        channels_last: bool = True,
        image_size: int | None = None,
        on_non_finite: str = "error",
    ) -> None:
        super().__init__()
        if on_non_finite not in ON_NON_FINITE:
            raise ValueError(f"model.on_non_finite={on_non_finite!r}; choose one of {ON_NON_FINITE}")
        # Plain values only: the network and the partials are rebuilt from the run's config.
        self.save_hyperparameters(logger=False, ignore=["net", "objective", "optimizer", "scheduler"])
        self.net = net
        self.objective = objective if objective is not None else LandmarkObjective()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheme = get_scheme(scheme)
        # A mapping arrives from Hydra as a DictConfig; plain values keep the checkpoint plain.
        self.nme_normalisation = (
            nme_normalisation if isinstance(nme_normalisation, str) else dict(nme_normalisation)
        )
        self.nme_thresholds = tuple(nme_thresholds)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        if image_size is not None:
            self.example_input_array = torch.zeros(1, 3, image_size, image_size)
        # The mean training shape, filled at fit start: the trivial baseline every split is compared with.
        self.register_buffer("mean_shape", torch.zeros(self.scheme.num_landmarks, 2))
        self.register_buffer("mean_shape_known", torch.tensor(False))
        self.split_metrics = nn.ModuleDict()
        self.baseline_metrics = nn.ModuleDict()
        self.occlusion_metrics = nn.ModuleDict()  # per split: the AUROCs of the occlusion map P
        self.skipped_batches = 0

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "eval_split_names", None) or ["val", "test"]
        for name in names:
            if name not in self.split_metrics:
                self.split_metrics[name] = self._nme_metric(name)
                self.baseline_metrics[name] = self._nme_metric(name)
                self.occlusion_metrics[name] = nn.ModuleDict(
                    {
                        "occluder_auroc": OccluderAUROC(),
                        "occluder_auroc_face": FaceOccluderAUROC(),
                        "face_auroc": FaceAUROC(),
                        "landmark_occlusion_auroc": LandmarkOcclusionAUROC(),
                    }
                )

    def _nme_metric(self, split: str) -> LandmarkNME:
        normalisation = normalisation_for(self.nme_normalisation, split)
        return LandmarkNME(self.scheme, normalisation, self.nme_thresholds)

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.mean_shape_known or not hasattr(datamodule, "mean_shape"):
            return  # resumed or fine-tuned: the checkpoint's mean shape and weights stay
        self.mean_shape.copy_(datamodule.mean_shape().to(self.mean_shape))
        self.mean_shape_known.fill_(True)
        # Start from the mean shape rather than the crop centre: the first epochs then refine a shape.
        if hasattr(self.net, "init_output_bias"):
            self.net.init_output_bias(self.mean_shape)

    def forward(self, images: Tensor) -> NetworkOutput:
        return self.net(images)

    def _step(self, batch: Batch) -> tuple[NetworkOutput, dict[str, Tensor]]:
        outputs = self.net(batch["image"].contiguous(memory_format=self.memory_format))
        try:
            return outputs, self.objective(outputs, batch["landmarks"], self.net)
        except (torch.linalg.LinAlgError, RuntimeError) as err:
            # The SVD of a non-finite M fails before any loss exists: name the weights, not LAPACK.
            broken = [name for name, p in self.net.named_parameters() if not torch.isfinite(p).all()]
            if not broken:
                raise
            raise NonFiniteError(
                f"{self._where(batch)}: the weights {', '.join(broken[:4])} are not finite, so eq. 3 "
                f"cannot be computed ({type(err).__name__}); {HINT}"
            ) from err

    def _where(self, batch: Batch) -> str:
        images = ", ".join(str(path) for path in batch["image_path"][:8])
        more = len(batch["image_path"]) - 8
        return f"step {self.global_step} (epoch {self.current_epoch}), batch of {images}" + (
            f" and {more} more" if more > 0 else ""
        )

    def _non_finite(self, batch: Batch, what: str) -> None:
        """Stop the run, or (on_non_finite=skip) say so and let the caller skip the batch."""
        message = f"{self._where(batch)}: {what} is not finite"
        if self.hparams.on_non_finite == "error":
            raise NonFiniteError(f"{message}; {HINT}")
        self.skipped_batches += 1
        log.warning(f"{message}; skipped (model.on_non_finite=skip)")

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        if not torch.isfinite(batch["image"]).all():
            self._non_finite(batch, "the input image tensor")
            return None
        _, terms = self._step(batch)
        broken = [name for name, value in terms.items() if not torch.isfinite(value).all()]
        if broken:
            # `loss` is the sum: name the eq.-3 terms that made it non-finite.
            names = [name for name in broken if name != "loss"] or ["loss"]
            self._non_finite(batch, f"the eq.-3 term {', '.join(names)}")
            return None
        size = len(batch["image"])
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=size)
        loss = terms["loss"].detach()
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=size)
                # Each term's share of the loss: how much of eq. 3 the regularisers are at this scale.
                self.log(f"train/share_{name}", value / loss, batch_size=size)
        return terms["loss"]

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads or torch.isfinite(torch.stack([g.norm() for g in grads]).sum()):
            return
        names = [
            n for n, p in self.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        self._non_finite(self._current_batch, f"the gradient of {', '.join(names[:4])}")
        for p in self.parameters():  # skip: without gradients the optimiser leaves the weights alone
            p.grad = None

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        self._current_batch = batch  # for naming the batch's images when its gradient is not finite

    def on_train_epoch_end(self) -> None:
        if self.hparams.on_non_finite == "skip":
            self.log("train/skipped_batches", float(self.skipped_batches))

    def _eval_step(self, batch: Batch, stage: str) -> EvalStepOutput:
        """Metrics of a batch, in original image pixels."""
        outputs, terms = self._step(batch)
        split = batch["split"][0]
        size = batch["image"].shape[-1]
        predicted = crop_to_original(outputs["landmarks"], batch["matrix"], size)
        visible = batch["visible"] if bool(torch.as_tensor(batch["has_visibility"]).all()) else None
        normaliser = {"normalising_box": batch["normalising_box"], "box_size": batch["box_size"]}
        faces = {**normaliser, "visible": visible, "index": batch["index"]}
        metric = self.split_metrics[split]
        metric.update(predicted, batch["target_px"], **faces)
        nme, distance = metric.per_face(predicted.detach(), batch["target_px"], **normaliser)
        if self.mean_shape_known:
            mean_shape = crop_to_original(
                self.mean_shape.expand_as(outputs["landmarks"]), batch["matrix"], size
            )
            self.baseline_metrics[split].update(mean_shape, batch["target_px"], **faces)
        occlusion = {}
        if "occlusion_map" in outputs:
            occlusion["landmark_occlusion"] = self._update_occlusion_metrics(outputs["occlusion_map"], batch)
        if stage == "val":
            self.log("val/loss", terms["loss"], batch_size=len(nme), add_dataloader_idx=False, sync_dist=True)
        return EvalStepOutput(
            **outputs, **occlusion, predicted_px=predicted, nme=nme, normalising_distance=distance
        )

    def _update_occlusion_metrics(self, occlusion_map: Tensor, batch: Batch) -> Tensor:
        """Adds a batch to its split's occlusion AUROCs, each where its inputs exist (the face region
        needs only the landmarks; the occluder mask and visibility flags not every dataset has), and
        returns each ground-truth point's occlusion score, 1 - P there: (B, L)."""
        metrics = self.occlusion_metrics[batch["split"][0]]
        landmarks, index = batch["landmarks"], batch["index"]
        metrics["face_auroc"].update(occlusion_map, landmarks, batch["image"].shape[-1], index=index)
        if "occluder_mask" in batch:
            mask = batch["occluder_mask"]
            metrics["occluder_auroc"].update(occlusion_map, mask, index=index)
            metrics["occluder_auroc_face"].update(occlusion_map, mask, landmarks, index=index)
        has_visibility = torch.as_tensor(batch["has_visibility"], dtype=torch.bool)
        if bool(has_visibility.any()):
            metrics["landmark_occlusion_auroc"].update(
                occlusion_map, landmarks, batch["visible"], has_visibility, index=index
            )
        return landmark_occlusion_scores(occlusion_map, landmarks)

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> EvalStepOutput:
        return self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> EvalStepOutput:
        return self._eval_step(batch, "test")

    def _log_split_metrics(self, stage: str) -> None:
        for split, metric in self.split_metrics.items():
            if not metric.update_called:
                continue
            prefix = "val" if stage == "val" else f"test/{split}"
            values = metric.compute()
            if self.mean_shape_known and self.baseline_metrics[split].update_called:
                values["nme_mean_shape"] = self.baseline_metrics[split].compute()["nme"]
            for name, occlusion_metric in self.occlusion_metrics[split].items():
                if occlusion_metric.update_called:
                    value = occlusion_metric.compute()
                    if not torch.isnan(value):  # NaN: no positive or no negative, so not measured
                        values[name] = value
                    occlusion_metric.reset()
            for name, value in values.items():
                self.log(f"{prefix}/{name}", value, prog_bar=stage == "val" and name == "nme")
            metric.reset()
            self.baseline_metrics[split].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_split_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_split_metrics("test")

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            return torch.optim.AdamW(self.parameters(), lr=1e-3)
        # The objective may hand its weight penalties to the optimiser as decoupled decay, per group.
        groups = getattr(self.objective, "parameter_groups", lambda net: None)(self.net)
        optimizer = self.optimizer_factory(params=groups if groups is not None else self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        length = {}
        if getattr(self.scheduler_factory, "keywords", {}).get("total_steps", 0) is None:
            # A schedule over the whole run (one-cycle): only the trainer knows how many steps it has.
            length["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, **length)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval},
        }
