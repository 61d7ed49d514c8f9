"""An exported model checked against the eager network it came from: both run on the same random
crops, the exported one through its metadata as a consumer would run it (ONNX Runtime), or loaded
(TorchScript). A module of its own: it needs both the exporters and the runtimes, and neither of them
needs it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .export_metadata import example_input
from .exporting import load_torchscript, max_abs_difference
from .model import TrainedModel
from .runtimes import EagerRuntime, OnnxRuntime


def verify_export(
    model: TrainedModel, path: str | Path, format: str, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0
) -> float:
    """Run the exported model (through its metadata, as a consumer would) and the eager network on the same
    random crops; the largest absolute difference over every output and batch size."""
    eager = EagerRuntime(model.net, model.image_size)
    exported = OnnxRuntime(path) if format == "onnx" else None
    scripted = load_torchscript(path) if format == "torchscript" else None
    worst = 0.0
    for batch in batch_sizes:
        crops = example_input(model.image_size, batch, seed=seed + batch).numpy()
        expected = eager(crops).as_tuple()
        if exported is not None:
            actual = exported(crops).as_tuple()
        else:
            with torch.inference_mode():
                actual = tuple(t.numpy() for t in scripted(torch.from_numpy(crops)))
        worst = max(worst, max_abs_difference(expected, actual))
    return worst
