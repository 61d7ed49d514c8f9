"""A trained network and the crop it was trained with, read from a checkpoint for inference.

The checkpoint is read weights-only and its network rebuilt from the suite's registry, as `eval` does
(`odn_lightning.training.registry`): a checkpoint is data, never code. What a consumer needs besides the
weights, the crop (side, margin, whose box) and the landmark scheme, comes from the run config the
checkpoint stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from torch import nn

from ..evaluation.calibration import SCORE_OF_HEAD, SCORE_OF_MAP, OcclusionCalibration
from ..schemes import LandmarkScheme, get_scheme, scheme_declaration
from ..training.callbacks import RUN_CONFIG_KEY
from ..training.checkpoints import CheckpointError, load_checkpoint

# What the crop is cut around when the run config does not say (the suite's defaults, conf/data/_landmarks.yaml).
DEFAULT_CROP_MARGIN = 0.25
DEFAULT_CROP_BOX = "landmarks"


@dataclass
class TrainedModel:
    """The network (eval mode, CPU) and what its inputs and outputs mean.

    net: images (B, 3, S, S), ImageNet-normalised RGB -> {"landmarks": (B, L, 2) crop frame,
        "occlusion_map": (B, 1, n, n) P, with the DM, "occlusion_logit": (B, L), with the visibility head}.
    image_size: S; crop_margin, crop_box: the crop is the square about the face box enlarged by
        `crop_margin`, the box being the landmarks' tight box ("landmarks") or the dataset's ("dataset").
    calibration: maps a point's raw occlusion score (sigmoid(occlusion_logit) with the visibility head,
        else 1 - P at the point; `evaluation.occlusion_output.raw_scores`) to the probability that it
        is occluded (fitted on the training run's validation flags); None where the run had none to fit on.
    """

    net: nn.Module
    image_size: int
    crop_margin: float
    crop_box: str
    scheme: LandmarkScheme
    variant: str
    data_name: str | None
    checkpoint: Path
    # The calibration of its occlusion output (evaluation/calibration); None: none, so no occlusion is output.
    calibration: OcclusionCalibration | None = None

    @property
    def has_occlusion_map(self) -> bool:
        return getattr(self.net, "distillation", None) is not None

    @property
    def has_occlusion_logit(self) -> bool:
        return getattr(self.net, "visibility", None) is not None

    def calibration_summary(self) -> dict[str, Any] | None:
        """The calibration for JSON, its formula naming the score this network's calibration reads."""
        if self.calibration is None:
            return None
        return self.calibration.summary(SCORE_OF_HEAD if self.has_occlusion_logit else SCORE_OF_MAP)

    def metadata(self) -> dict[str, Any]:
        """Plain values describing the crop, scheme and network, under the keys an exported model's
        metadata uses for them (`export_metadata.export_metadata`), so predict reads either alike."""
        return {
            "image_size": self.image_size,
            "crop": {"image_size": self.image_size, "margin": self.crop_margin, "box": self.crop_box},
            "scheme": scheme_declaration(self.scheme),
            "network": self.variant,
            "trained_on": self.data_name,
            "checkpoint": str(self.checkpoint),
            "occlusion_map": self.has_occlusion_map,
            "occlusion_logit": self.has_occlusion_logit,
            "occlusion_calibration": self.calibration_summary(),
        }


def load_trained_model(ckpt_path: str | Path) -> TrainedModel:
    """The network of a training run's checkpoint, with its crop and scheme; one line on any problem
    (missing, corrupt, unsafe, or no run config)."""
    from ..training.registry import build_trained_model  # the registry imports the whole training stack

    path = Path(ckpt_path)
    checkpoint = load_checkpoint(path)
    run = checkpoint.get(RUN_CONFIG_KEY)
    if not isinstance(run, dict) or not isinstance(run.get("model"), dict) or "net" not in run["model"]:
        raise CheckpointError(
            f"ckpt_path={path} holds no run config; pass the .ckpt file of an odn-lightning training run"
        )
    where = f"ckpt_path={path}"
    run_config = OmegaConf.create(run)
    model = build_trained_model(
        OmegaConf.to_container(run_config.model, resolve=True), checkpoint["state_dict"], where
    )
    data = run.get("data") if isinstance(run.get("data"), dict) else {}
    image_size = data.get("image_size") or run["model"].get("image_size")
    if not isinstance(image_size, int) or image_size < 1:
        raise CheckpointError(f"{where}: its run config gives no crop size (data.image_size)")
    net = model.net.eval()
    # A calibration is fitted where the network has an occlusion output: P, or the visibility head.
    has_occlusion = any(getattr(net, name, None) is not None for name in ("distillation", "visibility"))
    return TrainedModel(
        net=net,
        image_size=int(image_size),
        crop_margin=float(data.get("crop_margin", DEFAULT_CROP_MARGIN)),
        crop_box=str(data.get("crop_box", DEFAULT_CROP_BOX)),
        scheme=get_scheme(run["model"].get("scheme") or data.get("scheme")),
        variant=str(getattr(net, "variant", type(net).__name__)),
        data_name=data.get("name"),
        checkpoint=path,
        calibration=model.occlusion_output.fitted if has_occlusion else None,
    )
