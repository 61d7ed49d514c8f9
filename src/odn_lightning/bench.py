"""Benchmark entry point: `python -m odn_lightning.bench [key=value ...]` (or `make bench`, `odn-bench`).

One run measures, side by side on one device (conf/bench.yaml sizes and switches each part):

* train: the train step (forward, eq.-3 objective, backward, AdamW step) of every Table-4 row at the
  paper's batch and crop, each row's ratio to BRNet, and the share of each eq.-3 term in ODN's step
  under weight_penalty=loss and =decoupled;
* nuclear: ||M||_* value and gradient by SVD and by Newton-Schulz against the side d of M, with their
  errors against a float64 SVD;
* data: the data path's samples/s per worker (training and evaluation crops of synthetic faces
  rendered large), against the ODN train step's images/s;
* inference: latency of BRNet and ODN, eager, TorchScript and ONNX Runtime, batch 1 and 32.

It writes `<output_dir>/<device>.json` and `<device>.md` atomically; device is `cpu-<N>cores` or the
CUDA device's name (`nvidia-h100-80gb-hbm3`). Networks are randomly initialised (no weights are
downloaded): speed does not depend on the weights' values.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from . import runs
from .atomic import atomic_write_text
from .benchmarks.markdown import markdown
from .benchmarks.measurement import device_slug
from .benchmarks.settings import SECTIONS, check_config
from .benchmarks.speed import bench_data, bench_inference, bench_nuclear
from .benchmarks.train_step import bench_train
from .config import CONFIG_DIR


def _finite(node: Any) -> Any:
    """JSON has no NaN or infinity: such a number becomes null."""
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_finite(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def bench(cfg: DictConfig) -> dict[str, Any]:
    sections = check_config(cfg)
    runs.apply_extras(cfg)
    threads = torch.get_num_threads()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    try:
        return _bench(cfg, sections)
    finally:
        torch.set_num_threads(threads)


def _bench(cfg: DictConfig, sections: list[str]) -> dict[str, Any]:
    device = runs.torch_device(cfg.device)
    name = device_slug(device)
    result: dict[str, Any] = {
        "device": name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "settings": {
            "sections": sections,
            **{k: cfg[k] for k in ("batch_size", "image_size", "repeats", "warmup", "seed")},
        },
    }
    print(f"odn-bench on {name}: {', '.join(sections)}", flush=True)
    wall: dict[str, float] = {}
    for section in SECTIONS:
        if section not in sections:
            continue
        start = time.perf_counter()
        if section == "train":
            result["train"] = bench_train(cfg, device)
        elif section == "nuclear":
            result["nuclear"] = bench_nuclear(cfg, device)
        elif section == "data":
            odn = result.get("train", {}).get("rows", {}).get("odn")
            result["data"] = bench_data(cfg, device, odn["images_per_s"] if odn else None)
        else:
            result["inference"] = bench_inference(cfg, device)
        wall[section] = round(time.perf_counter() - start, 1)
        print(f"odn-bench: {section} done in {wall[section]} s", flush=True)
    result["settings"]["section_wall_s"] = wall
    result = _finite(result)
    output_dir = Path(cfg.output_dir)
    json_path = atomic_write_text(
        output_dir / f"{name}.json", json.dumps(result, indent=2, allow_nan=False) + "\n"
    )
    md_path = atomic_write_text(output_dir / f"{name}.md", markdown(result))
    print(markdown(result))
    print(f"written: {json_path}, {md_path}", flush=True)
    return {"json": json_path, "markdown": md_path, "result": result}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="bench")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(bench, cfg)


if __name__ == "__main__":
    main()
