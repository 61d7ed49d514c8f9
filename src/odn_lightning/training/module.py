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

from ..crop import crop_to_original
from ..datatypes import Batch, EvalStepOutput, NetworkOutput
from ..evaluation.metrics import LandmarkNME, normalisation_for
from ..evaluation.occlusion_output import OcclusionOutput
from ..schemes import SchemeSpec, get_scheme
from .objective import LandmarkObjective

log = logging.getLogger(__name__)
ON_NON_FINITE = ("error", "skip")
HINT = "lower model.optimizer.lr, check the listed images, or skip such batches with model.on_non_finite=skip"


class NonFiniteError(FloatingPointError):
    """A training batch whose input, eq.-3 term or gradient is NaN or infinite; one line."""


class LandmarkModule(L.LightningModule):
    """Args:
    net: the landmark network.
    objective: eq. (3) by default (`LandmarkObjective`); called as objective(outputs, target, net, batch).
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
    check_finite_every_n_steps: with on_non_finite="error", how often the device is asked whether
        the steps since the last check were finite (reading a GPU tensor waits for the GPU): 1 checks
        after every optimiser step and names that step's batch; n > 1 lets n steps queue without a
        wait and names the steps of the window. The training step itself never waits for the device.
    compile: options of torch.compile for the network (`{mode: max-autotune}`, `{backend: inductor}`,
        ...); None: eager.
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
        check_finite_every_n_steps: int = 1,
        compile: Mapping | None = None,
    ) -> None:
        super().__init__()
        if on_non_finite not in ON_NON_FINITE:
            raise ValueError(f"model.on_non_finite={on_non_finite!r}; choose one of {ON_NON_FINITE}")
        if type(check_finite_every_n_steps) is not int or check_finite_every_n_steps < 1:
            raise ValueError(
                f"model.check_finite_every_n_steps={check_finite_every_n_steps!r}; give a whole number >= 1"
            )
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
        # Per split: how well the occlusion map P finds occlusion; and the calibration of each checkpoint.
        self.occlusion_output = OcclusionOutput()
        self.skipped_batches = 0
        # on_non_finite=error: each step's finiteness stays on the device and is read every n steps.
        self._finite: Tensor | None = None
        self._unchecked_since: int | None = None
        self._last_terms: dict[str, Tensor] | None = None
        self._batch_step: int | None = None
        self.compile_options = dict(compile) if compile else None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "eval_split_names", None) or ["val", "test"]
        for name in names:
            if name not in self.split_metrics:
                self.split_metrics[name] = self._nme_metric(name)
                self.baseline_metrics[name] = self._nme_metric(name)
                self.occlusion_output.add_split(name)

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
            return outputs, self.objective(outputs, batch["landmarks"], self.net, batch)
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
        # After its optimiser step (on_train_batch_end) a batch is still named by the step it began.
        step = self._batch_step if self._batch_step is not None else self.global_step
        return f"step {step} (epoch {self.current_epoch}), batch of {images}" + (
            f" and {more} more" if more > 0 else ""
        )

    def _non_finite(self, batch: Batch, what: str) -> None:
        """Stop the run, or (on_non_finite=skip) say so and let the caller skip the batch."""
        message = f"{self._where(batch)}: {what} is not finite"
        if self.hparams.on_non_finite == "error":
            raise NonFiniteError(f"{message}; {HINT}")
        self.skipped_batches += 1
        log.warning(f"{message}; skipped (model.on_non_finite=skip)")

    def configure_model(self) -> None:
        if self.compile_options is not None and not getattr(self.net, "_odn_compiled", False):
            # Compiled in place (nn.Module.compile): parameter names and checkpoints stay those of eager.
            self.net.compile(**self.compile_options)
            self.net._odn_compiled = True

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        if self.hparams.on_non_finite == "skip":
            # Skipping needs the answer before the optimiser step: these checks wait for the device.
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
        else:
            # No host-device synchronisation here: finiteness is read after the step (on_train_batch_end).
            _, terms = self._step(batch)
            self._last_terms = {name: value.detach() for name, value in terms.items()}
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
        if not grads:
            return
        finite = torch.isfinite(torch.stack([g.norm() for g in grads]).sum())
        if self.hparams.on_non_finite == "error":
            # Kept on the device with the step's other checks; read in on_train_batch_end.
            self._record_finite(finite, torch.isfinite(self._current_batch["image"]).all())
            return
        if finite:
            return
        names = [
            n for n, p in self.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        self._non_finite(self._current_batch, f"the gradient of {', '.join(names[:4])}")
        for p in self.parameters():  # skip: without gradients the optimiser leaves the weights alone
            p.grad = None

    def _record_finite(self, *flags: Tensor) -> None:
        terms = self._last_terms or {}
        together = torch.stack([*flags, *(torch.isfinite(v).all() for v in terms.values())]).all()
        self._finite = together if self._finite is None else self._finite & together

    def on_train_batch_end(self, outputs, batch: Batch, batch_idx: int) -> None:
        try:
            self._check_finite(batch)
        finally:
            self._batch_step = None  # later messages (validation) name the current step

    def _check_finite(self, batch: Batch, force: bool = False) -> None:
        """Read the steps' finiteness every n steps (`force`: now, e.g. at the end of an epoch)."""
        if self.hparams.on_non_finite != "error":
            return
        if self._last_terms is not None and self._finite is None:
            # No optimiser step ran (a non-finite loss leaves no gradients): check the terms alone.
            self._record_finite(torch.isfinite(batch["image"]).all())
        step = self._batch_step if self._batch_step is not None else self.global_step
        if self._unchecked_since is None:
            self._unchecked_since = step
        every = self.hparams.check_finite_every_n_steps
        if self._finite is None or (not force and every > 1 and (step - self._unchecked_since) < every - 1):
            return
        finite, self._finite = self._finite, None
        first, self._unchecked_since = self._unchecked_since, None
        if bool(finite):  # the one read of the device, every n steps
            return
        if every > 1:
            raise NonFiniteError(
                f"between steps {first} and {step}: an input, eq.-3 term or gradient is not "
                f"finite (checked every {every} steps; model.check_finite_every_n_steps=1 names the "
                f"batch); {HINT}"
            )
        self._raise_non_finite(batch)

    def _raise_non_finite(self, batch: Batch) -> None:
        """Name what was not finite in the step just taken: the input, an eq.-3 term or a gradient."""
        if not torch.isfinite(batch["image"]).all():
            self._non_finite(batch, "the input image tensor")
        terms = self._last_terms or {}
        broken = [name for name, value in terms.items() if not torch.isfinite(value).all()]
        if broken:
            names = [name for name in broken if name != "loss"] or ["loss"]
            self._non_finite(batch, f"the eq.-3 term {', '.join(names)}")
        names = [
            n for n, p in self.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()
        ]
        self._non_finite(batch, f"the gradient of {', '.join(names[:4]) or 'a parameter'}")

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        self._current_batch = batch  # for naming the batch's images when its gradient is not finite
        self._batch_step = self.global_step

    def _check_pending_steps(self) -> None:
        """The last steps of a window shorter than n, before validation uses the weights and at the end
        of an epoch."""
        if self._finite is not None:
            self._batch_step = self.global_step - 1
            try:
                self._check_finite(self._current_batch, force=True)
            finally:
                self._batch_step = None

    def on_validation_epoch_start(self) -> None:
        self._check_pending_steps()

    def on_train_epoch_end(self) -> None:
        self._check_pending_steps()
        if self.hparams.on_non_finite == "skip":
            self.log("train/skipped_batches", float(self.skipped_batches))

    def _eval_step(self, batch: Batch, stage: str) -> EvalStepOutput:
        """Metrics of a batch, in original image pixels."""
        outputs, terms = self._step(batch)
        split = batch["split"][0]
        size = batch["image"].shape[-1]
        predicted = crop_to_original(outputs["landmarks"], batch["matrix"], size)
        visible = batch["visible"] if bool(torch.as_tensor(batch["has_visibility"]).all()) else None
        normaliser = {
            "normalising_box": batch["normalising_box"],
            "box_size": batch["box_size"],
            "located": batch.get("located"),
        }
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
        if "occlusion_map" in outputs or "occlusion_logit" in outputs:
            occlusion = self.occlusion_output.update(outputs, batch)
        if stage == "val":
            self.log("val/loss", terms["loss"], batch_size=len(nme), add_dataloader_idx=False, sync_dist=True)
        return EvalStepOutput(
            **outputs, **occlusion, predicted_px=predicted, nme=nme, normalising_distance=distance
        )

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
            # Validation refits the calibration: every checkpoint of the epoch carries that of its weights.
            fit = stage == "val" and not self.trainer.sanity_checking
            values |= self.occlusion_output.compute(split, stage, self.current_epoch, fit)
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
