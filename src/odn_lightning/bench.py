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
import re
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from . import runs
from .atomic import atomic_write_text
from .config import CONFIG_DIR
from .config_checks import (
    IMAGE_SIZE_WHY,
    ConfigError,
    check_values,
    int_at_least,
    non_negative_int,
    nullable,
    one_of,
    positive_int,
)
from .losses import WEIGHT_PENALTIES

SECTIONS = ("train", "nuclear", "data", "inference")
DEVICES = ("auto", "cpu", "cuda")
NUCLEAR_METHODS = ("svd", "newton_schulz")
RUNTIMES = ("eager", "torchscript", "onnx")
# The scalar settings, checked as train's are (config_checks.check_values).
SETTINGS = (
    ("device", one_of(DEVICES), "auto"),
    ("batch_size", positive_int, "32"),
    ("image_size", int_at_least(32, IMAGE_SIZE_WHY), "224"),
    ("repeats", positive_int, "10"),
    ("warmup", non_negative_int, "3"),
    ("threads", nullable(positive_int), "8"),
)
MODEL_DIR = Path(CONFIG_DIR) / "model"
# Eq. 3's regularisers: the name `LandmarkObjective` reports each under, and its weight's attribute.
TERM_WEIGHTS = {
    "nuclear_M": "beta",
    "frobenius_M": "gamma",
    "frobenius_conv": "alpha",
    "frobenius_fc": "lam",
    "l1_P": "eta",
}


# ------------------------------------------------------------------------------------------ config


def _names(cfg: DictConfig, key: str, allowed: Sequence[str] | None, what: str) -> list[str]:
    value = OmegaConf.select(cfg, key)
    values = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else None
    if values is None or not values or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{key}={value}: expected a non-empty list of {what}, e.g. {key}=[{allowed[0]}]")
    for name in values:
        if name not in allowed:
            raise ConfigError(f"{key}: unknown {what[:-1]} '{name}'; choose from {', '.join(allowed)}")
    return values


def _ints(cfg: DictConfig, key: str) -> list[int]:
    value = OmegaConf.select(cfg, key)
    values = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else None
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ConfigError(f"{key}={value}: expected a non-empty list of positive whole numbers")
    return values


def model_rows() -> list[str]:
    """The model configs (conf/model/<row>.yaml): the Table-4 rows and any others."""
    return sorted(p.stem for p in MODEL_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def check_config(cfg: DictConfig) -> list[str]:
    """The sections to run; ConfigError (one line) for any value the benchmark cannot use."""
    sections = _names(cfg, "sections", SECTIONS, "sections")
    check_values(cfg, SETTINGS)
    runs.torch_device(cfg.device)  # CUDA asked for where there is none: refused here, before any work
    if not cfg.get("output_dir"):
        raise ConfigError("output_dir: give the folder the results go to")
    rows = model_rows()
    if "train" in sections:
        chosen = _names(cfg, "train.rows", rows, "model configs")
        if cfg.train.baseline not in chosen:
            raise ConfigError(f"train.baseline={cfg.train.baseline}: expected one of train.rows ({chosen})")
        check_values(cfg, [("train.weight_penalty", nullable(one_of(WEIGHT_PENALTIES)), "decoupled")])
    if "nuclear" in sections:
        _ints(cfg, "nuclear.dims")
        _names(cfg, "nuclear.methods", NUCLEAR_METHODS, "methods")
    if "data" in sections:
        check_values(
            cfg, [(key, positive_int, "64") for key in ("data.faces", "data.render_size", "data.samples")]
        )
    if "inference" in sections:
        _names(cfg, "inference.networks", rows, "model configs")
        _names(cfg, "inference.runtimes", RUNTIMES, "runtimes")
        _ints(cfg, "inference.batch_sizes")
    return sections


# ------------------------------------------------------------------------------------------ device


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def device_slug(device: torch.device) -> str:
    """The results' file stem: cpu-<N>cores, or the CUDA device's name slugified."""
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    return f"cpu-{os.cpu_count()}cores"


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def max_rss_mib() -> float:
    """The process's peak resident memory so far (a high-water mark), MiB."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024 / (1024 if platform.system() == "Darwin" else 1), 1)


def current_rss_mib() -> float | None:
    """The process's resident memory now, MiB (Linux: /proc/self/statm; elsewhere None)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryDuring:
    """Peak memory while a measurement runs: CUDA's allocator peak on a GPU; on a CPU the process's
    resident memory, sampled every 2 ms by a thread (ru_maxrss is a high-water mark of the whole run,
    which cannot tell one runtime from the next)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: dict[str, float | None] = {}

    def __enter__(self) -> MemoryDuring:
        import threading

        if self.device.type == "cuda":
            reset_peak(self.device)
            return self
        self.base = current_rss_mib()
        self.peak = self.base
        self.stop = threading.Event()

        def sample() -> None:
            while not self.stop.wait(0.002):
                now = current_rss_mib()
                if now is not None and (self.peak is None or now > self.peak):
                    self.peak = now

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.result = peak_memory(self.device)
            return
        self.stop.set()
        self.thread.join()
        if self.base is None or self.peak is None:
            self.result = {"peak_rss_mib": None, "rss_increase_mib": None}
        else:
            self.result = {
                "peak_rss_mib": round(self.peak, 1),
                "rss_increase_mib": round(self.peak - self.base, 1),
            }


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"peak_cuda_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
    return {"max_rss_mib": max_rss_mib()}


# ------------------------------------------------------------------------------------------ timing


def timings(fn: Callable[[], Any], repeats: int, warmup: int, sync: Callable[[], None]) -> list[float]:
    """Seconds of each of `repeats` calls of fn, after `warmup` untimed ones; the device synchronised
    around each call."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def summary_ms(times: Sequence[float]) -> dict[str, float]:
    ms = [t * 1000 for t in times]
    return {
        "median_ms": round(statistics.median(ms), 4),
        "min_ms": round(min(ms), 4),
        "max_ms": round(max(ms), 4),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b > 0:
        return None
    return round(a / b, 4)


# ------------------------------------------------------------------------------------------ models


def compose_row(row: str, cfg: DictConfig, extra: Sequence[str] = ()) -> DictConfig:
    """The train config of model `row` as `python -m odn_lightning.train model=<row> ...` composes it,
    at the benchmark's crop and batch, never downloading weights."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"model={row}"]
    experiment = OmegaConf.select(cfg, "train.experiment")
    if experiment:
        overrides.append(f"experiment={experiment}")
    overrides += [
        f"data.image_size={cfg.image_size}",
        f"data.batch_size={cfg.batch_size}",
        "model.net.pretrained=false",
        "model.net.backbone_checkpoint=null",
        *(OmegaConf.select(cfg, "train.overrides") or []),
        *extra,
    ]
    if GlobalHydra.instance().is_initialized():
        return compose("train", overrides=overrides)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def build_net(row_cfg: DictConfig) -> torch.nn.Module:
    return hydra.utils.instantiate(row_cfg.model.net)


def build_objective(row_cfg: DictConfig, **weights: float):
    objective = hydra.utils.instantiate(row_cfg.model.objective)
    for name, value in weights.items():
        setattr(objective, name, value)
    return objective


def build_optimizer(row_cfg: DictConfig, net: torch.nn.Module, objective) -> torch.optim.Optimizer:
    """As `LandmarkModule.configure_optimizers`: the objective's parameter groups (decoupled decay)
    or all parameters, into the configured optimiser (AdamW)."""
    factory = hydra.utils.instantiate(row_cfg.model.optimizer)
    groups = objective.parameter_groups(net)
    return factory(params=groups if groups is not None else net.parameters())


class TrainStep:
    """One optimiser step of `net` on fixed random crops: forward, objective, backward, step."""

    def __init__(self, row_cfg: DictConfig, net, objective, device: torch.device, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        batch, size = int(row_cfg.data.batch_size), int(row_cfg.data.image_size)
        memory_format = torch.channels_last if row_cfg.model.get("channels_last") else torch.contiguous_format
        self.net = net
        self.objective = objective
        self.optimizer = build_optimizer(row_cfg, net, objective)
        self.images = (
            torch.randn(batch, 3, size, size, generator=generator)
            .to(device)
            .contiguous(memory_format=memory_format)
        )
        self.target = (torch.rand(batch, net.num_landmarks, 2, generator=generator) - 0.5).to(device)

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.net(self.images)
        self.objective(outputs, self.target, self.net)["loss"].backward()
        self.optimizer.step()


def _prepared_net(row_cfg: DictConfig, device: torch.device, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_net(row_cfg).to(device).train()
    if row_cfg.model.get("channels_last"):
        net.to(memory_format=torch.channels_last)
    return net


# ------------------------------------------------------------------------------------------ train


def bench_train(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    sync = synchronizer(device)
    penalty = cfg.train.weight_penalty
    extra = [f"model.objective.weight_penalty={penalty}"] if penalty else []
    rows: dict[str, Any] = {}
    for row in cfg.train.rows:
        row_cfg = compose_row(row, cfg, extra)
        reset_peak(device)
        net = _prepared_net(row_cfg, device, cfg.seed)
        step = TrainStep(row_cfg, net, build_objective(row_cfg), device, cfg.seed)
        times = summary_ms(timings(step, cfg.repeats, cfg.warmup, sync))
        rows[row] = {
            "variant": net.variant,
            "parameters": sum(p.numel() for p in net.parameters()),
            "weight_penalty": row_cfg.model.objective.weight_penalty,
            **times,
            "images_per_s": round(cfg.batch_size / (times["median_ms"] / 1000), 2),
            **peak_memory(device),
        }
        del net, step
    baseline = rows[cfg.train.baseline]["median_ms"]
    for values in rows.values():
        values["ratio_to_baseline"] = ratio(values["median_ms"], baseline)
    result: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "image_size": cfg.image_size,
        "baseline": cfg.train.baseline,
        "experiment": cfg.train.experiment,
        "rows": rows,
    }
    if cfg.train.term_shares:
        result["term_shares"] = {mode: term_shares(cfg, device, mode) for mode in WEIGHT_PENALTIES}
        result["terms_alone"] = alone = terms_alone(cfg, device)
        # The headline share: each term's own cost over ODN's whole step (the with/without differences
        # above are within the step's run-to-run noise on a CPU). Under "decoupled" only the nuclear
        # norm and the L1 term stay in the loss; the Frobenius terms are the optimiser's decay.
        odn_step = rows.get("odn", {}).get("median_ms")
        in_loss = {"loss": list(alone["terms"]), "decoupled": ["nuclear_M", "l1_P"]}
        alone["share_of_odn_step"] = {
            mode: ratio(sum(alone["terms"][n]["median_ms"] for n in names), odn_step)
            for mode, names in in_loss.items()
        }
    return result


def term_shares(cfg: DictConfig, device: torch.device, mode: str) -> dict[str, Any]:
    """ODN's step with every eq.-3 term on, and with each regulariser's weight (then all of them) set to
    0; the variants are timed in turn, repeat by repeat, so that drift hits them alike. A term's share
    is (step - step without it) / step: its forward, backward and (decoupled) optimiser cost; within
    the timing noise it can come out slightly negative."""
    sync = synchronizer(device)
    row_cfg = compose_row("odn", cfg, [f"model.objective.weight_penalty={mode}"])
    net = _prepared_net(row_cfg, device, cfg.seed)
    full = build_objective(row_cfg)
    present = [name for name, attr in TERM_WEIGHTS.items() if getattr(full, attr)]
    variants = {"all_terms": {}}
    variants.update({f"without_{name}": {TERM_WEIGHTS[name]: 0.0} for name in present})
    variants["coord_l2_only"] = {TERM_WEIGHTS[name]: 0.0 for name in present}
    steps = {
        key: TrainStep(row_cfg, net, build_objective(row_cfg, **weights), device, cfg.seed)
        for key, weights in variants.items()
    }
    times: dict[str, list[float]] = {key: [] for key in steps}
    for step in steps.values():
        for _ in range(cfg.warmup):
            step()
    for _ in range(cfg.repeats):
        for key, step in steps.items():
            times[key] += timings(step, 1, 0, sync)
    medians = {key: summary_ms(t)["median_ms"] for key, t in times.items()}
    total = medians["all_terms"]
    shares = {
        name: {
            "step_without_ms": medians[f"without_{name}"],
            "saved_ms": round(total - medians[f"without_{name}"], 4),
            "share": round((total - medians[f"without_{name}"]) / total, 4),
        }
        for name in present
    }
    regularisers = total - medians["coord_l2_only"]
    return {
        "weight_penalty": mode,
        "step_ms": total,
        "coord_l2_only_ms": medians["coord_l2_only"],
        "regularisers_share": round(regularisers / total, 4),
        "terms": shares,
    }


def terms_alone(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """Each eq.-3 regulariser's own forward and backward onto its tensors, in the loss (as in
    weight_penalty=loss), without the network: M, the conv weights, W_fc; P as a leaf (its backward
    into the network is not included)."""
    from .losses import nuclear_norm

    sync = synchronizer(device)
    row_cfg = compose_row("odn", cfg, ["model.objective.weight_penalty=loss"])
    net = _prepared_net(row_cfg, device, cfg.seed)
    objective = build_objective(row_cfg)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(cfg.seed)
        images = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, generator=generator)
        occlusion = net(images.to(device))["occlusion_map"].detach().requires_grad_(True)

    def squared(tensors: list[torch.Tensor], weight: float) -> Callable[[], torch.Tensor]:
        return lambda: weight * torch.stack([t.float().pow(2).sum() for t in tensors]).sum()

    structural = net.structural_matrix()
    terms = {
        "nuclear_M": lambda: objective.beta * nuclear_norm(structural.float(), objective.nuclear_norm_method),
        "frobenius_M": squared([structural], objective.gamma),
        "frobenius_conv": squared(list(net.conv_weights()), objective.alpha),
        "frobenius_fc": squared([net.fc_weight()], objective.lam),
        "l1_P": lambda: objective.eta * occlusion.float().abs().flatten(1).sum(dim=1).mean(),
    }
    result = {}
    for name, term in terms.items():

        def run(term=term) -> None:
            net.zero_grad(set_to_none=True)
            occlusion.grad = None
            term().backward()

        result[name] = summary_ms(timings(run, cfg.repeats, cfg.warmup, sync))
    return {"nuclear_norm_method": objective.nuclear_norm_method, "terms": result}


# ------------------------------------------------------------------------------------------ nuclear


def bench_nuclear(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    """For each d: ||M||_* value and gradient (backward) of a d x d Gaussian M / sqrt(d), float32 on the
    device, by each method; errors against the float64 SVD (value: relative; gradient U V^T: max abs)."""
    from .losses import nuclear_norm

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
    from .data.crop_cache import attach_crop_cache
    from .data.dataset import LandmarkDataset
    from .data.formats import read_pts_folder
    from .data.synthetic import ensure_synthetic
    from .data.transforms import CropAugmentation, occlusion_augmentation, photometric_augmentation
    from .datatypes import collate_samples
    from .schemes import get_scheme

    root = Path(cfg.data.root)
    ensure_synthetic(
        root, {"train": cfg.data.faces}, seed=cfg.seed, image_size=cfg.data.render_size, progress=False
    )
    records = read_pts_folder(root / "train")
    row_cfg = compose_row("odn", cfg)
    data_cfg = row_cfg.data
    scheme = get_scheme(_plain(data_cfg.scheme))

    def dataset(train: bool, cached: bool) -> LandmarkDataset:
        def plain(key: str) -> dict:
            return _plain(data_cfg[key]) or {}

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
    from .inference.exporting import export_model, export_torchscript, load_torchscript
    from .inference.runtimes import EagerRuntime, OnnxRuntime

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
    from .inference.model import TrainedModel
    from .inference.runtimes import OnnxRuntime
    from .schemes import get_scheme

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
                scheme=get_scheme(_plain(row_cfg.data.scheme)),
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


# ------------------------------------------------------------------------------------------ report


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    parts = [
        f"# Benchmark: {result['device']}",
        "",
        f"{env['device_name']}; torch {env['torch']}, {env['threads']} threads; {result['created']}. "
        f"Batch {result['settings']['batch_size']}, {result['settings']['image_size']} px; median of "
        f"{result['settings']['repeats']} after {result['settings']['warmup']} warm-up calls.",
    ]
    train = result.get("train")
    if train:
        memory_key = next(k for k in next(iter(train["rows"].values())) if k.startswith(("peak", "max_rss")))
        parts += [
            "",
            f"## Train step (forward, eq. 3, backward, optimiser step; experiment={train['experiment']})",
            "",
            _table(
                [
                    "row",
                    "network",
                    "weight penalty",
                    "ms/step",
                    f"x {train['baseline']}",
                    "images/s",
                    memory_key,
                ],
                [
                    [
                        row,
                        v["variant"],
                        v["weight_penalty"],
                        v["median_ms"],
                        v["ratio_to_baseline"],
                        v["images_per_s"],
                        v[memory_key],
                    ]
                    for row, v in train["rows"].items()
                ],
            ),
        ]
        for mode, shares in train.get("term_shares", {}).items():
            parts += [
                "",
                f"### ODN step by eq.-3 term, weight_penalty={mode}: {shares['step_ms']:.4g} ms with every "
                f"term, {shares['coord_l2_only_ms']:.4g} ms with coord_l2 only (regularisers' share "
                f"{shares['regularisers_share']:.1%})",
                "",
                _table(
                    ["term", "step without it (ms)", "saved (ms)", "share of the step"],
                    [
                        [n, t["step_without_ms"], t["saved_ms"], t["share"]]
                        for n, t in shares["terms"].items()
                    ],
                ),
            ]
        if "terms_alone" in train:
            alone = train["terms_alone"]
            parts += [
                "",
                f"### Each term alone, forward + backward in the loss (nuclear norm: {alone['nuclear_norm_method']})",
                "",
                _table(["term", "ms"], [[n, t["median_ms"]] for n, t in alone["terms"].items()]),
                "",
                "Regularisers' own cost over ODN's step: "
                + ", ".join(
                    f"weight_penalty={mode}: {share}"
                    for mode, share in alone.get("share_of_odn_step", {}).items()
                ),
            ]
    nuclear = result.get("nuclear")
    if nuclear:
        rows = []
        for d, methods in nuclear["dims"].items():
            for method, v in methods.items():
                if isinstance(v, dict):
                    rows.append([d, method, v["median_ms"], v["value_rel_error"], v["grad_max_abs_error"]])
        parts += [
            "",
            f"## Nuclear norm, value + gradient ({nuclear['matrix']}; errors vs float64 SVD)",
            "",
            _table(["d", "method", "ms", "value rel. error", "grad max abs error"], rows),
        ]
    data = result.get("data")
    if data:
        parts += [
            "",
            f"## Data path ({data['faces']} synthetic faces at {data['render_size']} px -> "
            f"{data['crop_size']} px crops; {data['cache']})",
            "",
            _table(
                [
                    "samples",
                    "read from",
                    "samples/s per worker",
                    "x uncached",
                    "model images/s (ODN step)",
                    "data / model",
                    "workers to feed",
                ],
                [
                    [
                        kind.split("_")[0],
                        "cache" if kind.endswith("_cached") else "photographs",
                        data[kind]["samples_per_s_per_worker"],
                        data[kind.split("_")[0]].get("cached_over_uncached")
                        if kind.endswith("_cached")
                        else 1,
                        data["model_images_per_s"],
                        data[kind]["data_over_model"],
                        data[kind]["workers_to_feed_model"],
                    ]
                    for kind in ("train", "train_cached", "eval", "eval_cached")
                ],
            ),
        ]
    inference = result.get("inference")
    if inference:
        rows = []
        for name, entry in inference["networks"].items():
            for runtime, by_batch in entry["runtimes"].items():
                if "error" in by_batch:
                    rows.append([name, runtime, f"failed: {by_batch['error']}", None, None, None])
                    continue
                for batch, v in by_batch.items():
                    memory = v.get("peak_cuda_memory_mib", v.get("rss_increase_mib"))
                    rows.append([name, runtime, batch, v["median_ms"], v["ms_per_face"], memory])
        parts += [
            "",
            f"## Inference latency ({inference['image_size']} px crops)",
            "",
            _table(
                [
                    "network",
                    "runtime",
                    "batch",
                    "ms/call",
                    "ms/face",
                    # CUDA: torch's allocator peak (ONNX Runtime's own arena is not in it); CPU: the
                    # resident memory the calls added to the process, sampled every 2 ms.
                    "peak MiB (CUDA)" if inference.get("device") == "cuda" else "RSS added, MiB",
                ],
                rows,
            ),
            "",
            _table(
                ["network", "ratio to eager", "value"],
                [
                    [n, k, v]
                    for n, e in inference["networks"].items()
                    for k, v in e["ratios_to_eager"].items()
                ],
            ),
        ]
    return "\n".join(parts) + "\n"


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
