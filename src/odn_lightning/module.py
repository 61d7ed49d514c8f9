"""The LightningModule: wires a landmark network, the objective, the metrics and the optimiser.

It does not care which network it wraps: any `nn.Module` whose forward returns a mapping with
`landmarks` (B, L, 2) in the crop's normalised [-1, 1] frame will do.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor, nn

from .data.transforms import crop_to_original
from .losses import LandmarkObjective
from .metrics import LandmarkNME, OccluderAUROC


def _build(spec, **kwargs):
    """A Hydra config node is instantiated; an object built already is used as it is."""
    return instantiate(spec, **kwargs) if isinstance(spec, (DictConfig, Mapping)) else spec


class LandmarkModule(L.LightningModule):
    def __init__(
        self,
        net: DictConfig | nn.Module,
        objective: DictConfig | nn.Module | None = None,
        optimizer: DictConfig | None = None,
        scheduler: DictConfig | None = None,
        scheduler_interval: str = "step",
        num_landmarks: int = 68,
        scheme: str = "ibug68",
        nme_normalisation: str | None = None,
        nme_thresholds: tuple[float, ...] = (0.08, 0.10),
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        # Configs are kept as hyper-parameters so that `load_from_checkpoint(path)` rebuilds the network.
        built = [
            name for name, value in (("net", net), ("objective", objective)) if isinstance(value, nn.Module)
        ]
        self.save_hyperparameters(logger=False, ignore=built)
        self.net = _build(net)
        self.objective = _build(objective) if objective is not None else LandmarkObjective()
        # NHWC convolutions are faster on CPUs and on tensor-core GPUs.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        # The mean training shape, filled at fit start: the trivial baseline every split is compared with.
        self.register_buffer("mean_shape", torch.zeros(num_landmarks, 2))
        self.register_buffer("mean_shape_known", torch.tensor(False))
        self.split_metrics = nn.ModuleDict()
        self.baseline_metrics = nn.ModuleDict()
        self.occluder_metrics = nn.ModuleDict()

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        names = getattr(datamodule, "eval_split_names", None) or ["val", "test"]
        hp = self.hparams
        # None: the evaluated dataset's own normalisation (AFLW: the face box; others: inter-ocular).
        normalisation = hp.nme_normalisation or getattr(datamodule, "nme_normalisation", "inter_ocular")
        scheme = getattr(datamodule, "scheme", None)
        scheme = scheme.name if scheme is not None else hp.scheme
        for name in names:
            if name not in self.split_metrics:
                self.split_metrics[name] = LandmarkNME(scheme, normalisation, tuple(hp.nme_thresholds))
                self.baseline_metrics[name] = LandmarkNME(scheme, normalisation, tuple(hp.nme_thresholds))
                self.occluder_metrics[name] = OccluderAUROC()

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.mean_shape_known or not hasattr(datamodule, "mean_shape"):
            return  # resumed or fine-tuned: the checkpoint's mean shape and weights stay
        self.mean_shape.copy_(datamodule.mean_shape().to(self.mean_shape))
        self.mean_shape_known.fill_(True)
        # Start from the mean shape rather than the crop centre: the first epochs then refine a shape.
        if hasattr(self.net, "init_output_bias"):
            self.net.init_output_bias(self.mean_shape)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.net(images)

    def _step(self, batch: Mapping) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        outputs = self.net(batch["image"].contiguous(memory_format=self.memory_format))
        return outputs, self.objective(outputs, batch["landmarks"], self.net)

    def training_step(self, batch: Mapping, batch_idx: int) -> Tensor:
        _, terms = self._step(batch)
        size = len(batch["image"])
        self.log("train/loss", terms["loss"], prog_bar=True, batch_size=size)
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=size)
        return terms["loss"]

    def _eval_step(self, batch: Mapping, stage: str) -> dict[str, Tensor]:
        """Metrics of a batch, in original image pixels; returns what the report callbacks use:
        `predicted_px` (B, L, 2), `nme` and `normaliser` (B,) and the network's outputs."""
        outputs, terms = self._step(batch)
        split = batch["split"][0]
        size = batch["image"].shape[-1]
        predicted = crop_to_original(outputs["landmarks"], batch["matrix"], size)
        visible = batch["visible"] if bool(torch.as_tensor(batch["has_visibility"]).all()) else None
        faces = {"box": batch["box"], "visible": visible, "index": batch["index"]}
        metric = self.split_metrics[split]
        metric.update(predicted, batch["target_px"], **faces)
        nme, normaliser = metric.per_face(predicted.detach(), batch["target_px"], batch["box"])
        if self.mean_shape_known:
            mean_shape = crop_to_original(
                self.mean_shape.expand_as(outputs["landmarks"]), batch["matrix"], size
            )
            self.baseline_metrics[split].update(mean_shape, batch["target_px"], **faces)
        if "occlusion_map" in outputs and "occluder_mask" in batch:
            self.occluder_metrics[split].update(outputs["occlusion_map"], batch["occluder_mask"])
        if stage == "val":
            self.log("val/loss", terms["loss"], batch_size=len(nme), add_dataloader_idx=False, sync_dist=True)
        return {"predicted_px": predicted, "nme": nme, "normaliser": normaliser, **outputs}

    def validation_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def _log_split_metrics(self, stage: str) -> None:
        for split, metric in self.split_metrics.items():
            if not metric.update_called:
                continue
            prefix = "val" if stage == "val" else f"test/{split}"
            values = metric.compute()
            if self.mean_shape_known and self.baseline_metrics[split].update_called:
                values["nme_mean_shape"] = self.baseline_metrics[split].compute()["nme"]
            if self.occluder_metrics[split].update_called:
                values["occluder_auroc"] = self.occluder_metrics[split].compute()
                self.occluder_metrics[split].reset()
            for name, value in values.items():
                self.log(f"{prefix}/{name}", value, prog_bar=stage == "val" and name == "nme")
            metric.reset()
            self.baseline_metrics[split].reset()

    def on_validation_epoch_end(self) -> None:
        self._log_split_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_split_metrics("test")

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer is None:
            return torch.optim.AdamW(self.parameters(), lr=1e-3)
        optimizer = instantiate(hp.optimizer, params=self.parameters())
        if hp.scheduler is None:
            return optimizer
        extra = {}
        if "total_steps" in hp.scheduler and hp.scheduler.total_steps is None:
            # One-cycle style schedules span the whole run, which only the trainer knows.
            extra["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate(hp.scheduler, optimizer=optimizer, **extra)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": hp.scheduler_interval},
        }
