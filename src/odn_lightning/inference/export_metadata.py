"""What an exported model is, for a consumer without the suite: its inputs and outputs by name, and the
metadata file beside it (`<model file>.json`: input, normalisation, crop, outputs, scheme, occlusion
calibration, provenance), written and read back checked. The exporters (`exporting`) write it; the
runtimes (`runtimes`) read it: neither needs the other.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_write_text
from ..evaluation.calibration import OcclusionCalibration
from ..imagenet import IMAGENET_MEAN, IMAGENET_STD
from .model import TrainedModel

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_VERSION = 1
INPUT_NAME = "images"
LANDMARKS = "landmarks"
OCCLUSION_MAP = "occlusion_map"
OCCLUSION_LOGIT = "occlusion_logit"
DEFAULT_OPSET = 18
# The batch of the example input a model is exported or traced with: not 1, which torch.export and
# the tracer may treat as a constant.
EXAMPLE_BATCH = 2

CROP_MATRIX = (
    "box = [x0, y0, x1, y1] in image pixels (0-based, pixel centres on integers); "
    "side = max(x1 - x0, y1 - y0) * (1 + margin); scale = image_size / side; "
    "cx = (x0 + x1) / 2 + 0.5; cy = (y0 + y1) / 2 + 0.5; left = cx - side / 2; top = cy - side / 2; "
    "matrix (image pixels -> crop pixels) = [[scale, 0, (0.5 - left) * scale - 0.5], "
    "[0, scale, (0.5 - top) * scale - 0.5]]; the crop is cv2.warpAffine(image, matrix, "
    "(image_size, image_size), flags=INTER_LINEAR, borderMode=BORDER_CONSTANT) (zeros outside the image)"
)
CROP_BOXES = {
    "landmarks": "the tight box of the face's landmarks (min and max of x and y); from a face detector, "
    "crop about the detector's box, then crop again about the tight box of the first prediction",
    "dataset": "the dataset's own face box (a detector's box stands for it)",
}


class ExportError(ValueError):
    """An exported model or its metadata that cannot be written, read or used; `str()` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def output_names(has_map: bool, has_logit: bool) -> list[str]:
    """The exported outputs, in order: landmarks, then occlusion_map (with the distillation module), then
    occlusion_logit (with the visibility head)."""
    return [LANDMARKS] + [OCCLUSION_MAP] * bool(has_map) + [OCCLUSION_LOGIT] * bool(has_logit)


def metadata_path(model_path: str | Path) -> Path:
    """Where an exported model's metadata lies: `<model file>.json` beside it (`odn.onnx.json`), so that
    both formats of one network can share a folder."""
    path = Path(model_path)
    return path.with_name(path.name + ".json")


def example_input(image_size: int, batch: int = EXAMPLE_BATCH, seed: int = 0) -> Tensor:
    """Random crops (B, 3, S, S), about the spread of ImageNet-normalised images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, image_size, image_size, generator=generator)


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def suite_version() -> str:
    from .. import __version__

    if __version__:
        return str(__version__)
    try:
        return importlib.metadata.version("odn-lightning")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------- metadata

OCCLUSION_PROBABILITY = (
    "the occlusion_score through `occlusion_calibration` (top level): the probability that the point is "
    "occluded; where that is null, the training run had no occlusion flags to calibrate on (nor to train "
    "a visibility head on), and the score is not an occlusion probability"
)


def export_metadata(
    model: TrainedModel, format: str, model_file: str, *, opset: int | None = None
) -> dict[str, Any]:
    """What a consumer needs to pre- and post-process the exported model without the suite."""
    if format not in FORMATS:
        raise ExportError(f"format={format}: expected one of {', '.join(FORMATS)}")
    size = model.image_size
    scheme = model.metadata()["scheme"]
    occlusion = logit = None
    if model.has_occlusion_map:
        with torch.no_grad():
            cells = int(model.net.eval()(example_input(size, 1))[OCCLUSION_MAP].shape[-1])
        occlusion = {
            "name": OCCLUSION_MAP,
            "shape": ["batch", 1, cells, cells],
            "dtype": "float32",
            "meaning": "P in [0, 1], the distillation module's map over the crop: the features of cells "
            "with a low P are suppressed as occluded; the n x n cells divide the whole crop evenly",
            "occlusion_score": "where the model also outputs occlusion_logit (a visibility head), the "
            "score is the head's, sigmoid(occlusion_logit), not 1 - P; else 1 - P read at the point: P "
            "interpolated bilinearly at the landmark's crop-frame (x, y), as "
            "torch.nn.functional.grid_sample(P, points, mode='bilinear', padding_mode='border', "
            "align_corners=False): cell (i, j)'s centre (row i, column j) is at x = (2 j + 1) / n - 1, "
            "y = (2 i + 1) / n - 1; beyond the outer centres the border value holds",
            "occlusion_probability": OCCLUSION_PROBABILITY + " (1 - P's sign is not even fixed: P may be "
            "higher at occluded points)",
        }
    if model.has_occlusion_logit:
        logit = {
            "name": OCCLUSION_LOGIT,
            "shape": ["batch", scheme["num_landmarks"]],
            "dtype": "float32",
            "meaning": "each landmark's occlusion logit from the visibility head, read at the predicted "
            "point (higher: more likely occluded; trained against the visibility flags)",
            "occlusion_score": "sigmoid(occlusion_logit) = 1 / (1 + exp(-occlusion_logit)) per point; "
            "where this output is present it is the occlusion score, not 1 - P of occlusion_map",
            "occlusion_probability": OCCLUSION_PROBABILITY,
        }
    metadata: dict[str, Any] = {
        "metadata_version": METADATA_VERSION,
        "format": format,
        "model_file": model_file,
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "channels": "RGB",
            "dtype": "float32",
            "shape": ["batch", 3, size, size],
            "batch": "dynamic" if format == "onnx" else "any (traced)",
        },
        "image_size": size,
        "normalisation": {
            "formula": "input = (pixel / 255 - mean) / std per RGB channel (pixel: 0..255), in float32",
            "scale": 1.0 / 255.0,
            "mean": [round(float(v), 7) for v in IMAGENET_MEAN],
            "std": [round(float(v), 7) for v in IMAGENET_STD],
        },
        "crop": {
            "image_size": size,
            "margin": model.crop_margin,
            "box": model.crop_box,
            "box_meaning": CROP_BOXES.get(model.crop_box, model.crop_box),
            "matrix": CROP_MATRIX,
        },
        "outputs": {
            LANDMARKS: {
                "name": LANDMARKS,
                "shape": ["batch", scheme["num_landmarks"], 2],
                "dtype": "float32",
                "frame": "(x, y) per point in the crop frame [-1, 1]: -1 and +1 are the crop's outer "
                "edges (pixel i of the crop spans [i, i + 1))",
                "to_crop_pixels": "x_px = ((x + 1) * image_size - 1) / 2, y_px likewise (0-based, pixel "
                "centres on integers)",
                "to_image_pixels": "solve matrix[:, :2] @ p + matrix[:, 2] = crop pixels for p (the "
                "inverse of the crop matrix, e.g. cv2.invertAffineTransform)",
            },
            OCCLUSION_MAP: occlusion,
            OCCLUSION_LOGIT: logit,
        },
        "scheme": scheme,
        "occlusion_calibration": model.calibration_summary(),
        "network": model.variant,
        "trained_on": model.data_name,
        "checkpoint": {
            "path": str(Path(model.checkpoint).absolute()),
            "sha256": _sha256(Path(model.checkpoint)),
        },
        "versions": {"odn_lightning": suite_version(), "torch": torch.__version__},
    }
    if format == "onnx":
        import onnx

        metadata["versions"]["onnx"] = onnx.__version__
        metadata["opset"] = int(opset if opset is not None else DEFAULT_OPSET)
    return metadata


def write_metadata(path: str | Path, metadata: dict[str, Any]) -> Path:
    """The metadata as JSON (indented, UTF-8), written atomically."""
    return atomic_write_text(path, json.dumps(metadata, indent=2, allow_nan=False) + "\n")


# Keys every metadata file has, and what each holds.
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "model_file": str,
    "input": dict,
    "image_size": int,
    "normalisation": dict,
    "crop": dict,
    "outputs": dict,
    "scheme": dict,
    "network": str,
}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """An exported model's metadata, checked for the keys a consumer relies on; one line on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExportError(
            f"{path}: no metadata file; an exported model needs the .json written beside it by "
            "python -m odn_lightning.export"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ExportError(
            f"{path}: cannot read the metadata ({getattr(err, 'strerror', None) or err})"
        ) from None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ExportError(f"{path}: not JSON metadata ({err}); export the model again") from None
    if not isinstance(metadata, dict):
        raise ExportError(f"{path}: the metadata is not a JSON object; export the model again")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(metadata.get(key), kind) or isinstance(metadata.get(key), bool):
            raise ExportError(f"{path}: the metadata lacks a valid '{key}'; export the model again")
    problems = {
        "format": metadata["format"] in FORMATS,
        "image_size": metadata["image_size"] >= 1,
        "input.name": isinstance(metadata["input"].get("name"), str),
        "normalisation.mean": _three_numbers(metadata["normalisation"].get("mean")),
        "normalisation.std": _three_numbers(metadata["normalisation"].get("std"), positive=True),
        "normalisation.scale": _number(metadata["normalisation"].get("scale")),
        "crop.margin": _number(metadata["crop"].get("margin")),
        "crop.box": isinstance(metadata["crop"].get("box"), str),
        f"outputs.{LANDMARKS}": isinstance(metadata["outputs"].get(LANDMARKS), dict),
        f"outputs.{OCCLUSION_MAP}": isinstance(metadata["outputs"].get(OCCLUSION_MAP), (dict, type(None))),
        "scheme.num_landmarks": isinstance(metadata["scheme"].get("num_landmarks"), int)
        and metadata["scheme"]["num_landmarks"] >= 1,
        f"outputs.{OCCLUSION_LOGIT}": _logit_entry(metadata),  # absent (exported before the head): null
    }
    for key, good in problems.items():
        if not good:
            raise ExportError(f"{path}: the metadata's '{key}' is missing or invalid; export the model again")
    try:
        OcclusionCalibration.from_summary(metadata.get("occlusion_calibration"))
    except ValueError as err:
        raise ExportError(f"{path}: {err}") from None
    return metadata


def occlusion_calibration(metadata: dict[str, Any]) -> OcclusionCalibration | None:
    """The calibration of the occlusion output an exported model's (or a checkpoint's) metadata holds;
    None where it holds none (a model exported before calibration existed included)."""
    return OcclusionCalibration.from_summary(metadata.get("occlusion_calibration"))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _three_numbers(value: Any, positive: bool = False) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and all(_number(v) and (not positive or v > 0) for v in value)
    )


def _logit_entry(metadata: dict[str, Any]) -> bool:
    entry, points = metadata["outputs"].get(OCCLUSION_LOGIT), metadata["scheme"].get("num_landmarks")
    return entry is None or (isinstance(entry, dict) and entry.get("shape") == ["batch", points])


def has_occlusion_map(metadata: dict[str, Any]) -> bool:
    return metadata["outputs"].get(OCCLUSION_MAP) is not None


def has_occlusion_logit(metadata: dict[str, Any]) -> bool:
    """Whether the model outputs the visibility head's logits (metadata written before the head: no)."""
    return metadata["outputs"].get(OCCLUSION_LOGIT) is not None
