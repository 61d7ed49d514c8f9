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

from .exporting import (
    LANDMARKS,
    OCCLUSION_MAP,
    ExportError,
    has_occlusion_map,
    metadata_path,
    read_metadata,
)


@dataclass
class RuntimeOutput:
    """landmarks (B, L, 2) float32 in the crop frame [-1, 1]; occlusion_map (B, 1, n, n) float32 P, None
    without the distillation module."""

    landmarks: np.ndarray
    occlusion_map: np.ndarray | None

    def as_tuple(self) -> tuple[np.ndarray, ...]:
        """The outputs in the exported models' order: (landmarks,) or (landmarks, occlusion_map)."""
        return (self.landmarks,) if self.occlusion_map is None else (self.landmarks, self.occlusion_map)


class Runtime:
    """Runs the network: `runtime(crops)` -> RuntimeOutput. `name` says which ("eager", "onnx")."""

    name: str = "runtime"
    image_size: int
    has_occlusion_map: bool

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
        return f"{type(self).__name__}(image_size={self.image_size}, occlusion_map={self.has_occlusion_map})"


class EagerRuntime(Runtime):
    """The PyTorch network itself (eval mode, `torch.inference_mode`), on `device`."""

    name = "eager"

    def __init__(self, net: nn.Module, image_size: int, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.image_size = int(image_size)
        self.has_occlusion_map = getattr(net, "distillation", None) is not None

    def __call__(self, crops: np.ndarray) -> RuntimeOutput:
        crops = self.check_crops(crops)
        with torch.inference_mode():
            outputs = self.net(torch.from_numpy(crops).to(self.device))
        landmarks = outputs[LANDMARKS].float().cpu().numpy()
        occlusion = outputs.get(OCCLUSION_MAP)
        return RuntimeOutput(landmarks, None if occlusion is None else occlusion.float().cpu().numpy())


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
        self.num_landmarks = int(self.metadata["scheme"]["num_landmarks"])
        self.input_name = str(self.metadata["input"]["name"])
        self.output_names = [LANDMARKS, OCCLUSION_MAP] if self.has_occlusion_map else [LANDMARKS]
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

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, crops: np.ndarray) -> RuntimeOutput:
        crops = self.check_crops(crops)
        values = self.session.run(self.output_names, {self.input_name: crops})
        landmarks = np.asarray(values[0], dtype=np.float32)
        occlusion = np.asarray(values[1], dtype=np.float32) if self.has_occlusion_map else None
        return RuntimeOutput(landmarks, occlusion)
