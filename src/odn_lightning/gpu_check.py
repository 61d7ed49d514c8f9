"""GPU check entry point: `python -m odn_lightning.gpu_check [key=value ...]` (or `make gpu-check`).

Runs bench, training under each precision and compile setting with host-device synchronisation
forbidden in the step, eval, export and ONNX Runtime against eager on one device, each command a process
of its own (`benchmarks.gpu_check`), and writes `<output_dir>/<device>-checks.json` and `.md`. Exits 1
when a step failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from . import runs
from .atomic import atomic_write_text
from .benchmarks.gpu_check import gpu_check, markdown
from .benchmarks.measurement import device_slug
from .config import CONFIG_DIR


class GpuCheckFailed(runs.RunError):
    """A step of the GPU check failed; its log is named in the record."""


def check(cfg: DictConfig) -> dict:
    runs.apply_extras(cfg)
    if cfg.device not in ("cuda", "cpu"):
        raise runs.RunError(f"device={cfg.device}: expected cuda or cpu")
    device = runs.torch_device(cfg.device)  # CUDA where none is visible: one line
    record = gpu_check(cfg, device_slug(device))
    output_dir = Path(cfg.output_dir)
    name = record["device"]
    report = markdown(record)
    json_path = atomic_write_text(output_dir / f"{name}-checks.json", json.dumps(record, indent=2) + "\n")
    md_path = atomic_write_text(output_dir / f"{name}-checks.md", report)
    print(report)
    print(f"written: {json_path}, {md_path}", flush=True)
    if record["failed"]:
        raise GpuCheckFailed(f"gpu check failed at: {', '.join(record['failed'])}; see {md_path}")
    return record


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="gpu_check")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(check, cfg)


if __name__ == "__main__":
    main()
