"""What `predict`'s config asks for, built: the runtime that runs the network (eager PyTorch from a
checkpoint, or ONNX Runtime from an exported model or one exported on the spot) with the metadata of
its crop and scheme, the scheme check (`expect_scheme=`), and the face detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..config_checks import ConfigError
from ..schemes import get_scheme, scheme_from_declaration
from ..training.checkpoints import CheckpointError
from .detectors import FaceDetector
from .exporting import export_model
from .model import load_trained_model
from .runtimes import EagerRuntime, OnnxRuntime, Runtime

RUNTIMES = ("eager", "onnx")


def load_runtime(cfg: DictConfig, device: torch.device) -> tuple[Runtime, dict[str, Any]]:
    """The network to run and the metadata of its crop and scheme (`inference.model.TrainedModel.metadata`
    or the exported model's metadata file)."""
    if cfg.runtime not in RUNTIMES:
        raise ConfigError(f"runtime={cfg.runtime}; choose one of {', '.join(RUNTIMES)}")
    if cfg.onnx_path:
        if cfg.ckpt_path:
            raise ConfigError("give ckpt_path= or onnx_path=, not both")
        runtime = OnnxRuntime(cfg.onnx_path, threads=cfg.threads)
        return runtime, runtime.metadata  # read and checked against the model by OnnxRuntime
    if not cfg.ckpt_path:
        raise CheckpointError(
            "no model given: pass ckpt_path=PATH/TO/run/checkpoints/last.ckpt (or onnx_path=MODEL.onnx)"
        )
    model = load_trained_model(cfg.ckpt_path)
    if cfg.runtime == "onnx":
        # Exported into this run's directory first: the run keeps the model it used.
        path, _ = export_model(model, Path(cfg.paths.output_dir), "onnx")
        runtime = OnnxRuntime(path, threads=cfg.threads)
        return runtime, runtime.metadata
    return EagerRuntime(model.net, model.image_size, device=str(device)), model.metadata()


def check_scheme(expected: Any, metadata: dict[str, Any], where: str) -> None:
    """`expect_scheme=NAME` asks for a model of that landmark scheme: another is refused in one line."""
    if expected in (None, ""):
        return
    wanted = get_scheme(expected)
    stored = scheme_from_declaration(metadata["scheme"])
    if (wanted.name, wanted.num_landmarks) != (stored.name, stored.num_landmarks):
        raise CheckpointError(
            f"{where} predicts the {stored.num_landmarks}-point scheme {stored.name}, but expect_scheme={wanted.name} "
            f"({wanted.num_landmarks} points) was asked for; use a checkpoint trained on {wanted.name}"
        )


def build_detector(cfg: DictConfig, metadata: dict[str, Any], input_root: Path | None) -> FaceDetector:
    node = OmegaConf.to_container(cfg.detector, resolve=True)
    if "crop_margin" in node and node["crop_margin"] is None:
        node["crop_margin"] = metadata["crop"]["margin"]  # detector=none: the crop is the whole image
    if "root" in node and node["root"] is None:
        node["root"] = input_root  # detector=boxes: image names may be relative to the input folder
    return instantiate(node)
