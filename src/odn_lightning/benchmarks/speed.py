"""The other sections of a bench run: the nuclear norm by SVD and Newton-Schulz against the size of
M, the data path's samples/s per worker against the model's images/s, and inference latency (eager,
TorchScript, ONNX Runtime).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from .measurement import MemoryDuring, ratio, summary_ms, synchronizer, timings
from .settings import RUNTIMES
from .train_step import build_net, compose_row, plain_config


def bench_nuclear(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """For each d: ||M||_* value and gradient (backward) of a d x d Gaussian M / sqrt(d), float32 on the
    device, by each method; errors against the float64 SVD (value: relative; gradient U V^T: max abs)."""
    from ..training.objective import nuclear_norm

    sync = synchronizer(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    results: dict[str, Any] = {}
    for d in cfg.nuclear.dims:
        cpu_matrix = torch.randn(d, d, generator=generator) / math.sqrt(d)
        u, singular, vh = torch.linalg.svd(cpu_matrix.double())
        reference_value, reference_grad = float(singular.sum()), u @ vh
        matrix = cpu_matrix.to(device).requires_grad_(True)
        by_method = {}
        for method in cfg.nuclear.methods:
            value_box: list[torch.Tensor] = []

            def run(method=method, value_box=value_box, matrix=matrix) -> None:
                matrix.grad = None
                value = nuclear_norm(matrix, method)
                value.backward()
                value_box[:] = [value]

            times = summary_ms(timings(run, cfg.repeats, cfg.warmup, sync))
            value = float(value_box[0].detach().double().cpu())
            grad = matrix.grad.detach().double().cpu()
            by_method[method] = {
                **times,
                "value_rel_error": float(abs(value - reference_value) / reference_value),
                "grad_max_abs_error": float((grad - reference_grad).abs().max()),
            }
        if {"svd", "newton_schulz"} <= by_method.keys():
            by_method["newton_schulz_over_svd"] = ratio(
                by_method["newton_schulz"]["median_ms"], by_method["svd"]["median_ms"]
            )
        results[str(d)] = by_method
    return {"matrix": "d x d Gaussian / sqrt(d), float32", "dims": results}


# ------------------------------------------------------------------------------------------ data


def bench_data(cfg: DictConfig, device: torch.device, model_images_per_s: float | None) -> dict[str, Any]:
    """Samples/s of the data path in this process (num_workers=0: one worker): LandmarkDataset over
    synthetic faces rendered at data.render_size, training samples (augmented as the recipe's data
    config says) and evaluation samples (deterministic crop), collated in batches as the loader does,
    read from the photographs and from the face-crop cache (`data.crop_cache`, built once here first)."""
    from ..data.crop_cache import attach_crop_cache
    from ..data.dataset import LandmarkDataset
    from ..data.formats import read_pts_folder
    from ..data.synthetic import ensure_synthetic
    from ..data.transforms import CropAugmentation, occlusion_augmentation, photometric_augmentation
    from ..datatypes import collate_samples
    from ..schemes import get_scheme

    root = Path(cfg.data.root)
    ensure_synthetic(
        root, {"train": cfg.data.faces}, seed=cfg.seed, image_size=cfg.data.render_size, progress=False
    )
    records = read_pts_folder(root / "train")
    row_cfg = compose_row("odn", cfg)
    data_cfg = row_cfg.data
    scheme = get_scheme(plain_config(data_cfg.scheme))

    def dataset(train: bool, cached: bool) -> LandmarkDataset:
        def plain(key: str) -> dict:
            return plain_config(data_cfg[key]) or {}

        made = LandmarkDataset(
            records,
            scheme,
            "train" if train else "eval",
            cfg.image_size,
            float(data_cfg.crop_margin),
            CropAugmentation(**plain("augmentation")) if train else None,
            photometric_augmentation(**plain("photometric")) if train else None,
            occlusion_augmentation(**plain("occlusion")) if train else None,
            str(data_cfg.crop_box),
            occluder_masks=not train,
        )
        if cached:
            attach_crop_cache(made, root / ".cache", "bench", float(data_cfg.get("cache_resolution", 1.25)))
            if made.crops is None:
                raise RuntimeError(f"the face-crop cache could not be written under {root / '.cache'}")
        return made

    samples, batch = cfg.data.samples, cfg.batch_size
    results: dict[str, Any] = {}
    for kind in ("train", "eval", "train_cached", "eval_cached"):
        train = kind.startswith("train")
        started = time.perf_counter()
        data = dataset(train, kind.endswith("_cached"))
        setup_s = round(time.perf_counter() - started, 3)
        counter = iter(range(10**12))

        def one_pass(data=data, counter=counter, train=train) -> None:
            pending = []
            for _ in range(samples):
                index = next(counter)
                pending.append(data[(index % len(data), index)] if train else data[index % len(data)])
                if len(pending) == batch:
                    collate_samples(pending)
                    pending = []
            if pending:
                collate_samples(pending)

        times = summary_ms(timings(one_pass, cfg.repeats, 1, lambda: None))
        per_worker = round(samples / (times["median_ms"] / 1000), 2)
        results[kind] = {
            "samples_per_pass": samples,
            "setup_s": setup_s,  # cached: opening (or, on the first run, building) the cache
            **times,
            "samples_per_s_per_worker": per_worker,
            "data_over_model": ratio(per_worker, model_images_per_s),
            "workers_to_feed_model": None
            if model_images_per_s is None
            else math.ceil(model_images_per_s / per_worker),
        }
    for kind in ("train", "eval"):
        results[kind]["cached_over_uncached"] = ratio(
            results[f"{kind}_cached"]["samples_per_s_per_worker"], results[kind]["samples_per_s_per_worker"]
        )
    return {
        "faces": len(records),
        "render_size": cfg.data.render_size,
        "crop_size": cfg.image_size,
        "cache": "photographs and the face-crop cache (data.cache)",
        "model_images_per_s": model_images_per_s,
        "model_images_per_s_from": "train.rows.odn (section train)" if model_images_per_s else None,
        **results,
    }


# ------------------------------------------------------------------------------------------ inference


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def _runners(cfg: DictConfig, name: str, model, net, folder: str, device: torch.device):
    """The runtimes to time, {runtime: crops -> outputs}, and {runtime: why it could not be built}.
    Exports run on the CPU network before the eager runtime moves it to the device."""
    from ..inference.exporting import export_model, export_torchscript, load_torchscript
    from ..inference.runtimes import EagerRuntime, OnnxRuntime

    runners: dict[str, Callable[[np.ndarray], Any]] = {}
    errors: dict[str, str] = {}
    if "onnx" in cfg.inference.runtimes:
        try:
            path, _ = export_model(model, folder, "onnx", name=name)
            runners["onnx"] = OnnxRuntime(path, threads=cfg.get("threads"))
        except Exception as err:
            errors["onnx"] = _reason(err)
    if "torchscript" in cfg.inference.runtimes:
        try:
            scripted = load_torchscript(export_torchscript(model, Path(folder) / f"{name}.pt")).to(device)

            def run_scripted(crops: np.ndarray, scripted=scripted) -> list[np.ndarray]:
                with torch.inference_mode():
                    outputs = scripted(torch.from_numpy(crops).to(device))
                return [o.cpu().numpy() for o in outputs]

            runners["torchscript"] = run_scripted
        except Exception as err:
            errors["torchscript"] = _reason(err)
    if "eager" in cfg.inference.runtimes:
        runners["eager"] = EagerRuntime(net, model.image_size, str(device))
    return runners, errors


def bench_inference(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """ms per call and per face of each network, eager (EagerRuntime), TorchScript (traced, loaded
    back for this measurement only) and ONNX Runtime (exported, run through OnnxRuntime), on random
    crops; the eager network is timed as predict runs it (eval mode, inference_mode, outputs to NumPy)."""
    from ..inference.model import TrainedModel
    from ..inference.runtimes import OnnxRuntime
    from ..schemes import get_scheme

    sync = synchronizer(device)
    size = cfg.image_size
    networks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="odn-bench-") as folder:
        for name in cfg.inference.networks:
            row_cfg = compose_row(name, cfg)
            torch.manual_seed(cfg.seed)
            net = build_net(row_cfg).eval()
            model = TrainedModel(
                net=net,
                image_size=size,
                crop_margin=float(row_cfg.data.crop_margin),
                crop_box=str(row_cfg.data.crop_box),
                scheme=get_scheme(plain_config(row_cfg.data.scheme)),
                variant=net.variant,
                data_name=None,
                checkpoint=Path(folder) / "untrained.ckpt",
            )
            runners, errors = _runners(cfg, name, model, net, folder, device)
            by_runtime: dict[str, Any] = {runtime: {"error": error} for runtime, error in errors.items()}
            for runtime, runner in runners.items():
                by_batch = {}
                try:
                    for batch in cfg.inference.batch_sizes:
                        crops = np.random.default_rng(cfg.seed).standard_normal(
                            (batch, 3, size, size), np.float32
                        )
                        with MemoryDuring(device) as memory:
                            times = summary_ms(
                                timings(lambda r=runner, c=crops: r(c), cfg.repeats, cfg.warmup, sync)
                            )
                        by_batch[str(batch)] = {
                            **times,
                            "ms_per_face": round(times["median_ms"] / batch, 4),
                            **memory.result,
                        }
                except Exception as err:  # one runtime failing (e.g. a traced graph on another device)
                    by_batch = {"error": _reason(err)}
                by_runtime[runtime] = by_batch
            by_runtime = {key: by_runtime[key] for key in RUNTIMES if key in by_runtime}
            entry: dict[str, Any] = {"variant": net.variant, "runtimes": by_runtime}
            if isinstance(runners.get("onnx"), OnnxRuntime):
                entry["onnx_providers"] = runners["onnx"].providers
            batches = [str(b) for b in cfg.inference.batch_sizes]
            first = "1" if "1" in batches else batches[0]
            eager = by_runtime.get("eager", {}).get(first, {}).get("median_ms")
            entry["ratios_to_eager"] = {
                f"{runtime}_batch{first}": ratio(by_runtime[runtime].get(first, {}).get("median_ms"), eager)
                for runtime in by_runtime
                if runtime != "eager" and eager is not None
            }
            networks[name] = entry
            del net, model, runners
    return {
        "image_size": size,
        "batch_sizes": list(cfg.inference.batch_sizes),
        "device": device.type,
        "networks": networks,
    }
