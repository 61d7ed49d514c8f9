"""Export a trained network for consumers outside the suite: ONNX (any runtime) or TorchScript (C++).

Each exported model gets a metadata file beside it, `<model file>.json` (`odn.onnx` + `odn.onnx.json`;
`export_metadata`), holding what a consumer needs to use it without the suite: the input (name, layout,
size), the normalisation, how the crop is cut, what the outputs mean and how to map them back to
pixels, the landmark scheme, and where the model came from (checkpoint and its sha256, versions).

Every file is written atomically (`odn_lightning.atomic`): a model file is whole or absent.
TorchScript is an export format only: the suite never loads one for its own inputs (a TorchScript file
is code), so `predict` runs the eager network or an ONNX model (`odn_lightning.inference.runtimes`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..atomic import atomic_write_bytes
from .export_metadata import (
    DEFAULT_OPSET,
    EXAMPLE_BATCH,
    FORMATS,
    INPUT_NAME,
    ExportError,
    example_input,
    export_metadata,
    metadata_path,
    output_names,
    write_metadata,
)
from .model import TrainedModel


class ExportableNetwork(nn.Module):
    """The network with plain tensor outputs, as exporters want: images (B, 3, S, S) -> (landmarks
    (B, L, 2)[, occlusion_map (B, 1, n, n) with the distillation module][, occlusion_logit (B, L) with
    the visibility head]), named by `output_names`."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.has_occlusion_map = getattr(net, "distillation", None) is not None
        self.has_occlusion_logit = getattr(net, "visibility", None) is not None

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outputs = self.net(images)
        return tuple(outputs[name] for name in self.output_names)

    @property
    def output_names(self) -> list[str]:
        return output_names(self.has_occlusion_map, self.has_occlusion_logit)


def network_file_stem(variant: str) -> str:
    """A file name for a network variant: "ODN (GM+LM+DM)" -> odn, "BRNet" -> brnet, "+GM+DM" ->
    gm_dm, "BRNet, conv_pool readout" -> brnet_conv_pool (the names of conf/model)."""
    base, _, readout = variant.partition(", ")
    name = "odn" if base.startswith("ODN") else base.strip().strip("+").replace("+", "_").lower()
    if readout:
        name += "_" + readout.removesuffix(" readout")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "network"


# ------------------------------------------------------------------------------------------ export


def _checked_path(path: str | Path, format: str) -> Path:
    path = Path(path)
    if path.suffix != FORMATS[format]:
        raise ExportError(f"{path}: a {format} model's file name ends in {FORMATS[format]}")
    return path


@contextlib.contextmanager
def _quiet_exporter():
    # The exporter's passes log every step at INFO, which a Hydra run's root logger shows.
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(model: TrainedModel, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """The network as an ONNX model with a dynamic batch ("images" -> `ExportableNetwork.output_names`),
    checked by onnx.checker and written atomically. Uses torch.onnx's torch.export-based exporter."""
    import onnx

    path = _checked_path(path, "onnx")
    wrapper = ExportableNetwork(model.net.eval()).eval()
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                wrapper,
                (example_input(model.image_size),),
                None,
                dynamo=True,
                verbose=False,
                input_names=[INPUT_NAME],
                output_names=wrapper.output_names,
                dynamic_shapes={"images": {0: batch}},
                opset_version=opset,
            )
        proto = program.model_proto
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"torch.onnx could not export {model.variant} (opset {opset}): {reason[:300]}"
        ) from err
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported ONNX model is not valid: {str(err).splitlines()[0][:300]}") from err
    names = ([i.name for i in proto.graph.input], [o.name for o in proto.graph.output])
    if names != ([INPUT_NAME], wrapper.output_names):
        raise ExportError(
            f"the exported ONNX model has inputs/outputs {names}, not {INPUT_NAME} -> {wrapper.output_names}"
        )
    return atomic_write_bytes(path, proto.SerializeToString())


@contextlib.contextmanager
def _quiet_tracing():
    # torch.jit's deprecation notices, and the tracer's notes about the GM's shape check (the crop size
    # is fixed; the batch dimension is checked below by running other batch sizes).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load a TorchScript model this process exported itself (for checks and tests: a TorchScript file
    is code; the suite never loads one it was given)."""
    with _quiet_tracing():
        return torch.jit.load(str(path), map_location="cpu")


def export_torchscript(model: TrainedModel, path: str | Path) -> Path:
    """The network traced to TorchScript (images -> tuple of tensors), checked at batch sizes other
    than the traced one, and written atomically."""
    path = _checked_path(path, "torchscript")
    wrapper = ExportableNetwork(model.net.eval()).eval()
    example = example_input(model.image_size)
    try:
        with _quiet_tracing(), torch.no_grad():
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
            for batch in (1, EXAMPLE_BATCH + 1):
                images = example_input(model.image_size, batch, seed=batch)
                diff = max_abs_difference(wrapper(images), traced(images))
                if not diff <= 1e-5:
                    raise ExportError(
                        f"the traced {model.variant} does not generalise to batch {batch} "
                        f"(max abs difference {diff:.3g})"
                    )
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
    except ExportError:
        raise
    except Exception as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"torch.jit.trace could not export {model.variant}: {reason[:300]}") from err
    return atomic_write_bytes(path, buffer.getvalue())


def max_abs_difference(expected: tuple[Tensor, ...] | list, actual: tuple[Tensor, ...] | list) -> float:
    """The largest absolute difference over paired outputs (tensors or arrays); inf when their number or
    shapes differ."""
    if len(expected) != len(actual):
        return float("inf")
    worst = 0.0
    for a, b in zip(expected, actual, strict=True):
        a = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        b = b.detach().cpu().numpy() if isinstance(b, Tensor) else np.asarray(b)
        if a.shape != b.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0)))
    return worst


def export_model(
    model: TrainedModel,
    output_dir: str | Path,
    format: str,
    name: str | None = None,
    opset: int = DEFAULT_OPSET,
) -> tuple[Path, Path]:
    """Export `model` to `output_dir/<name><ext>` with its metadata beside it; (model path, metadata path)."""
    if format not in FORMATS:
        raise ExportError(f"format={format}: expected one of {', '.join(FORMATS)}")
    stem = name or network_file_stem(model.variant)
    path = Path(output_dir) / f"{stem}{FORMATS[format]}"
    if format == "onnx":
        export_onnx(model, path, opset=opset)
    else:
        export_torchscript(model, path)
    metadata = export_metadata(model, format, path.name, opset=opset if format == "onnx" else None)
    return path, write_metadata(metadata_path(path), metadata)
