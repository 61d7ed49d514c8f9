"""The GPU check (`make gpu-check`, `python -m odn_lightning.gpu_check`): the suite's device paths run as
a user runs them, each command a process of its own, and what came out written into one record.

1. `bench` on the device (every section; the device's own `<device>.json` and `.md`);
2. the paper recipe (ODN, AdamW, one-cycle, 224 px, batch 32) for `steps` training steps under each
   precision and compile setting, with `SyncDebugGuard` (no host-device synchronisation in a step's
   forward, objective and backward on CUDA);
3. `eval` of the first variant's checkpoint on the device;
4. `export` to ONNX and ONNX Runtime (CUDA provider first where installed) against the eager network
   on the device, on random crops.

Written: `<output_dir>/<device>-checks.json` and `.md`. With `device=cpu` and small sizes it is the form
that CI runs, so that the commands it strings together cannot drift from the suite's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ENTRY = "odn_lightning"


def run_command(task: str, args: list[str], log: Path) -> dict[str, Any]:
    """`python -m odn_lightning.<task> ARGS`, its output into `log`: exit code, seconds, last lines."""
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", f"{ENTRY}.{task}", *args], stdout=out, stderr=subprocess.STDOUT
        )
    lines = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if line.strip() and "HYDRA_FULL_ERROR" not in line
    ]
    return {
        "command": f"python -m {ENTRY}.{task} {' '.join(args)}",
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "last_lines": lines[-3:],
        "log": str(log),
    }


def trainer_choice(device: str) -> str:
    """The conf/trainer choice for the check's device."""
    return "gpu" if device == "cuda" else "cpu"


def variant_name(precision: str, compile_setting: Any) -> str:
    return f"{precision}" + ("" if compile_setting in (None, "null") else "+compile")


def compile_override(compile_setting: Any) -> str:
    if compile_setting in (None, "null"):
        return "model.compile=null"
    pairs = ", ".join(f"{k}: {v}" for k, v in dict(compile_setting).items())
    return f"model.compile={{{pairs}}}"


def training_args(cfg: Any, precision: str, compile_setting: Any, run_dir: Path) -> list[str]:
    """The paper recipe (experiment=ablation model=odn) for `cfg.steps` steps on the embedded synthetic
    faces, generated into the check's own folder (never the user's data/synthetic)."""
    return [
        "experiment=ablation",
        "model=odn",
        "data=synthetic",
        f"data.root={Path(cfg.output_dir) / 'synthetic'}",
        *[f"data.synthetic.sizes.{split}={size}" for split, size in dict(cfg.synthetic_sizes).items()],
        f"data.image_size={cfg.image_size}",
        f"data.batch_size={cfg.batch_size}",
        f"data.num_workers={cfg.num_workers}",
        "model.net.pretrained=false",
        f"trainer={trainer_choice(cfg.device)}",
        f"trainer.precision={precision}",
        compile_override(compile_setting),
        f"++trainer.max_steps={cfg.steps}",
        "trainer.max_epochs=-1",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "test=false",
        "+callbacks.sync_guard._target_=odn_lightning.training.callbacks.SyncDebugGuard",
        "extras.print_config=false",
        f"hydra.run.dir={run_dir}",
    ]


def onnx_against_eager(checkpoint: Path, onnx_path: Path, device: str, image_size: int) -> dict[str, Any]:
    """ONNX Runtime (its providers, CUDA first where installed) against the eager network on `device`,
    on 8 random crops: the largest landmark difference in crop-frame units."""
    import onnxruntime

    from ..inference.model import load_trained_model
    from ..inference.runtimes import EagerRuntime, OnnxRuntime

    model = load_trained_model(checkpoint)
    crops = np.random.default_rng(0).standard_normal((8, 3, image_size, image_size)).astype(np.float32)
    eager = EagerRuntime(model.net, model.image_size, device)(crops)
    onnx = OnnxRuntime(onnx_path)
    exported = onnx(crops)
    return {
        "providers_installed": onnxruntime.get_available_providers(),
        "providers_used": onnx.providers,
        "cuda_provider": "CUDAExecutionProvider" in onnx.providers,
        "max_landmark_difference": float(np.abs(exported.landmarks - eager.landmarks).max()),
    }


def gpu_check(cfg: Any, device_slug: str) -> dict[str, Any]:
    """Runs the steps; returns the record (`failed`: the steps whose command exited non-zero or whose
    check did not hold; `passed`: none did)."""
    output_dir = Path(cfg.output_dir)
    logs = output_dir / "gpu_check_logs"
    logs.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"device": device_slug, "torch": torch.__version__, "steps": {}}
    steps = record["steps"]
    steps["bench"] = run_command(
        "bench",
        [f"device={cfg.device}", f"output_dir={output_dir}", *cfg.bench_overrides],
        logs / "bench.log",
    )
    first_checkpoint = None
    for variant in cfg.variants:
        name = variant_name(variant.precision, variant.compile)
        run_dir = output_dir / "runs" / name
        result = run_command(
            "train",
            training_args(cfg, variant.precision, variant.compile, run_dir),
            logs / f"train-{name}.log",
        )
        metrics_file = run_dir / "metrics.json"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            result["train_loss"] = metrics.get("train/loss")
            result["val_nme"] = metrics.get("val/nme")
        guard = [
            line
            for line in (logs / f"train-{name}.log").read_text(errors="replace").splitlines()
            if "sync guard:" in line
        ]
        result["sync_guard"] = guard[-1].split("sync guard: ", 1)[1] if guard else None
        steps[f"train {name}"] = result
        if first_checkpoint is None and result["returncode"] == 0:
            first_checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if first_checkpoint is not None:
        steps["eval"] = run_command(
            "eval",
            [
                f"ckpt_path={first_checkpoint}",
                f"trainer={trainer_choice(cfg.device)}",
                "trainer.enable_progress_bar=false",
                f"hydra.run.dir={output_dir / 'eval'}",
            ],
            logs / "eval.log",
        )
        exported = output_dir / "export"
        steps["export"] = run_command(
            "export", [f"ckpt_path={first_checkpoint}", f"hydra.run.dir={exported}"], logs / "export.log"
        )
        models = sorted(exported.glob("*.onnx"))
        if steps["export"]["returncode"] == 0 and models:
            comparison = onnx_against_eager(first_checkpoint, models[0], cfg.device, cfg.image_size)
            comparison["passed"] = comparison["max_landmark_difference"] <= cfg.onnx_tolerance
            steps["onnx_against_eager"] = comparison
    record["failed"] = [
        name for name, step in steps.items() if step.get("returncode", 0) != 0 or not step.get("passed", True)
    ] + ([] if first_checkpoint is not None else ["training (no checkpoint to evaluate)"])
    record["passed"] = not record["failed"]
    return record


def markdown(record: dict[str, Any]) -> str:
    """The record as a short report."""
    lines = [
        f"# GPU check on {record['device']} (torch {record['torch']}): {'passed' if record['passed'] else 'FAILED'}",
        "",
        "| step | exit | seconds | notes |",
        "| --- | --- | --- | --- |",
    ]
    for name, step in record["steps"].items():
        if "returncode" in step:
            notes = []
            if "train_loss" in step:
                notes.append(f"train loss {step['train_loss']:.4g}, val NME {step.get('val_nme')}")
            if step.get("sync_guard"):
                notes.append(f"sync guard: {step['sync_guard']}")
            if step["returncode"] != 0:
                notes.append(" / ".join(step["last_lines"]))
            lines.append(f"| {name} | {step['returncode']} | {step['seconds']} | {'; '.join(notes)} |")
        else:
            lines.append(
                f"| {name} | - | - | providers {step['providers_used']}, largest landmark difference "
                f"{step['max_landmark_difference']:.2e} ({'ok' if step['passed'] else 'too large'}) |"
            )
    return "\n".join(lines) + "\n"
