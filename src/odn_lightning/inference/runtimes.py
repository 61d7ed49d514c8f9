"""What runs the network on crops: the eager PyTorch network, or an exported ONNX model.

Both take crops (B, 3, S, S) float32, ImageNet-normalised RGB, any batch size, and give a
`RuntimeOutput` of NumPy arrays. There is deliberately no TorchScript runtime: loading a TorchScript
file runs code stored in it, and the suite reads its inputs as data, never code (TorchScript is an
export format for consumers only, `odn_lightning.inference.exporting`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .export_metadata import (
    LANDMARKS,
    OCCLUSION_LOGIT,
    OCCLUSION_MAP,
    ExportError,
    has_occlusion_logit,
    has_occlusion_map,
    metadata_path,
    output_names,
    read_metadata,
)


@dataclass
class RuntimeOutput:
    """landmarks (B, L, 2) float32 in the crop frame [-1, 1]; occlusion_map (B, 1, n, n) float32 P, None
    without the distillation module; occlusion_logit (B, L) float32, the visibility head's logits, None
    without the head."""

    landmarks: np.ndarray
    occlusion_map: np.ndarray | None
    occlusion_logit: np.ndarray | None = None

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        """The outputs in the exported models' order: landmarks[, occlusion_map][, occlusion_logit]."""
        extra = (self.occlusion_map, self.occlusion_logit)
        return (self.landmarks, *(value for value in extra if value is not None))


def _array(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.float().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


class Runtime:
    """Runs the network: `runtime(crops)` -> RuntimeOutput. `name` says which ("eager", "onnx")."""

    name: str = "runtime"
    image_size: int
    has_occlusion_map: bool
    has_occlusion_logit: bool = False

    def __call__(self, crops: np.ndarray) -> RuntimeOutput:
        raise NotImplementedError

    def check_crops(self, crops: np.ndarray) -> np.ndarray:
        """The crops as a contiguous float32 (B, 3, S, S) array; ValueError for another shape."""
        crops = np.asarray(crops)
        size = self.image_size
        if crops.ndim != 4 or crops.shape[1:] != (3, size, size):
            raise ValueError(
                f"the {self.name} runtime takes crops of shape (B, 3, {size}, {size}), got {crops.shape}"
            )
        return np.ascontiguousarray(crops, dtype=np.float32)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_size={self.image_size}, occlusion_map={self.has_occlusion_map}, "
            f"occlusion_logit={self.has_occlusion_logit})"
        )


class EagerRuntime(Runtime):
    """The PyTorch network itself (eval mode, `torch.inference_mode`), on `device`."""

    name = "eager"

    def __init__(self, net: nn.Module, image_size: int, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.image_size = int(image_size)
        self.has_occlusion_map = getattr(net, "distillation", None) is not None
        self.has_occlusion_logit = getattr(net, "visibility", None) is not None

    def __call__(self, crops: np.ndarray) -> RuntimeOutput:
        crops = self.check_crops(crops)
        with torch.inference_mode():
            outputs = self.net(torch.from_numpy(crops).to(self.device))
        return RuntimeOutput(
            *(_array(outputs.get(name)) for name in (LANDMARKS, OCCLUSION_MAP, OCCLUSION_LOGIT))
        )


def _providers() -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or [
        "CPUExecutionProvider"
    ]


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class OnnxRuntime(Runtime):
    """An exported ONNX model (`python -m odn_lightning.export format=onnx`) in ONNX Runtime, CUDA first
    where available, else CPU. Its metadata file (`<model file>.json` beside it, `odn.onnx.json`) is read and the model's
    input and outputs checked against it: a missing or corrupt model or metadata is one ExportError line.

    threads: ONNX Runtime's intra-op threads (None: its default, one per core)."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime

        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(
                f"{self.path}: no such ONNX model; export one with python -m odn_lightning.export "
                "ckpt_path=PATH format=onnx"
            )
        self.metadata: dict[str, Any] = read_metadata(metadata_path(self.path))
        where = f"{self.path} (metadata {metadata_path(self.path).name})"
        if self.metadata["format"] != "onnx":
            raise ExportError(f"{where}: the metadata describes a {self.metadata['format']} model, not ONNX")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads={threads}: give a positive number of threads, or None")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only: no notes about providers on every start
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=_providers())
        except Exception as err:  # ONNX Runtime raises its own kinds for a file it cannot use
            reason = " ".join(str(err).split())[:300] or type(err).__name__
            raise ExportError(
                f"{self.path}: not a usable ONNX model (truncated, corrupt or another kind of file: {reason}); "
                "export it again"
            ) from None
        self.image_size = int(self.metadata["image_size"])
        self.has_occlusion_map = has_occlusion_map(self.metadata)
        self.has_occlusion_logit = has_occlusion_logit(self.metadata)
        self.num_landmarks = int(self.metadata["scheme"]["num_landmarks"])
        self.input_name = str(self.metadata["input"]["name"])
        self.output_names = output_names(self.has_occlusion_map, self.has_occlusion_logit)
        self._check_model(where)

    def _check_model(self, where: str) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [self.input_name]:
            raise ExportError(
                f"{where}: the model's inputs {[i.name for i in inputs]} are not the metadata's "
                f"['{self.input_name}']; the metadata belongs to another model"
            )
        shape = list(inputs[0].shape)
        size = self.image_size
        if (
            inputs[0].type != "tensor(float)"
            or len(shape) != 4
            or [_dim(d) for d in shape[1:]] != [3, size, size]
        ):
            raise ExportError(
                f"{where}: the model takes {inputs[0].type} {shape}, the metadata says float32 "
                f"[batch, 3, {size}, {size}]; the metadata belongs to another model"
            )
        names = {o.name: o for o in outputs}
        if sorted(names) != sorted(self.output_names):
            raise ExportError(
                f"{where}: the model's outputs {sorted(names)} are not the metadata's {self.output_names}; "
                "the metadata belongs to another model"
            )
        points = list(names[LANDMARKS].shape)
        if len(points) != 3 or [_dim(d) for d in points[1:]] not in ([self.num_landmarks, 2], [None, None]):
            raise ExportError(
                f"{where}: the model predicts landmarks {points}, the metadata's scheme has "
                f"{self.num_landmarks} points; the metadata belongs to another model"
            )
        logits = list(names[OCCLUSION_LOGIT].shape) if self.has_occlusion_logit else None
        if logits is not None and (len(logits) != 2 or _dim(logits[1]) not in (self.num_landmarks, None)):
            raise ExportError(
                f"{where}: the model's occlusion_logit is {logits}, not one per point of the metadata's "
                f"{self.num_landmarks}; the metadata belongs to another model"
            )

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, crops: np.ndarray) -> RuntimeOutput:
        crops = self.check_crops(crops)
        values = self.session.run(self.output_names, {self.input_name: crops})
        values = dict(zip(self.output_names, values, strict=True))
        return RuntimeOutput(
            *(_array(values.get(name)) for name in (LANDMARKS, OCCLUSION_MAP, OCCLUSION_LOGIT))
        )
