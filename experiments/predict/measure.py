"""Per-face cost of predict on this machine: detector time per image and network time per face, eager
PyTorch vs ONNX Runtime, at batch 1 and batch 32, for BRNet and ODN at the paper's 224 px crop.

    .venv/bin/python experiments/predict/measure.py [--threads 2] [--repeats 5]

Timing does not depend on the weights: the networks are the paper's configurations, untrained. The
detectors run on the real photos of tests/assets/photos (and scikit-image's astronaut). Prints a
Markdown table (the README beside this script holds the one measured here).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import torch

from odn_lightning.inference.detectors import HaarDetector, HogDetector
from odn_lightning.inference.exporting import export_model
from odn_lightning.inference.media import Frame
from odn_lightning.inference.model import TrainedModel
from odn_lightning.inference.runtimes import EagerRuntime, OnnxRuntime
from odn_lightning.models import ODN
from odn_lightning.schemes import get_scheme

PHOTOS = Path(__file__).resolve().parents[2] / "tests" / "assets" / "photos"
NETWORKS = {
    "BRNet": dict(use_gm=False, use_dm=False, use_lm=False),
    "ODN (GM+LM+DM)": dict(use_gm=True, use_dm=True, use_lm=True),
}


def best_of(function, repeats: int) -> float:
    function()  # warm-up (ONNX Runtime plans its first call)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def photos() -> list[Frame]:
    frames = [Frame("astronaut", None, skimage.data.astronaut())]
    for path in sorted(PHOTOS.iterdir()):
        if path.suffix.lower() in (".jpg", ".png"):
            frames.append(Frame(str(path), None, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)))
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = ["| what | batch | ms per face | ms per call |", "|---|---|---|---|"]
    size = args.image_size
    with tempfile.TemporaryDirectory() as folder:
        for name, switches in NETWORKS.items():
            net = ODN(68, **switches).eval()
            model = TrainedModel(net, size, 0.25, "landmarks", get_scheme("ibug68"), name, None, Path("untrained"))
            path, _ = export_model(model, Path(folder), "onnx")
            runtimes = {"eager": EagerRuntime(net, size), "onnx": OnnxRuntime(path, threads=args.threads)}
            for batch in (1, 32):
                crops = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
                for runtime_name, runtime in runtimes.items():
                    seconds = best_of(lambda runtime=runtime, crops=crops: runtime(crops), args.repeats)
                    rows.append(
                        f"| {name}, {runtime_name} | {batch} | {1e3 * seconds / batch:.1f} | {1e3 * seconds:.1f} |"
                    )
    frames = photos()
    pixels = np.mean([f.image.shape[0] * f.image.shape[1] for f in frames]) / 1e6
    for detector in (HaarDetector(), HogDetector()):
        seconds = [best_of(lambda f=f, d=detector: d.detect(f), args.repeats) for f in frames]
        rows.append(
            f"| detector={detector.name} ({len(frames)} photos, mean {pixels:.2f} MP) | image | - | "
            f"{1e3 * float(np.mean(seconds)):.1f} |"
        )
    print(f"threads={args.threads}, crop {size} px, median of {args.repeats} calls after one warm-up")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
