"""The train step of a Table-4 row, as `train` composes it (network, eq.-3 objective, AdamW), and of
the heatmap baselines under their own recipe (network, heatmap MSE, Adam): the `train` section times
it per row, counts each network's parameters and FLOPs, and the share of each eq.-3 term in ODN's step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from ..config import CONFIG_DIR
from ..models.summary import describe_network
from ..training.objective import WEIGHT_PENALTIES
from .measurement import peak_memory, ratio, reset_peak, summary_ms, synchronizer, timings
from .settings import TERM_WEIGHTS

# `compose_row`'s recipe where none is named: the bench's `train.experiment` (Table 4's rows).
TABLE4_RECIPE = "train.experiment"


def compose_row(
    row: str, cfg: DictConfig, extra: Sequence[str] = (), experiment: str | None = TABLE4_RECIPE
) -> DictConfig:
    """The train config of model `row` as `python -m odn_lightning.train model=<row> experiment=...`
    composes it (`experiment`: a recipe's name, None for the model config as it is; by default the
    bench's `train.experiment`), at the benchmark's crop and batch, never downloading weights."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    overrides = [f"model={row}"]
    if experiment == TABLE4_RECIPE:
        experiment = OmegaConf.select(cfg, TABLE4_RECIPE)
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


def plain_config(value: Any) -> Any:
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
    or all parameters, into the configured optimiser (AdamW; Adam for the heatmap recipe)."""
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
    recipes = {row: (cfg.train.experiment, extra) for row in cfg.train.rows}
    heatmap_recipe = (OmegaConf.select(cfg, "train.heatmap_experiment"), [])
    recipes.update({row: heatmap_recipe for row in OmegaConf.select(cfg, "train.heatmap_rows") or []})
    rows: dict[str, Any] = {}
    for row, (experiment, row_extra) in recipes.items():
        row_cfg = compose_row(row, cfg, row_extra, experiment)
        reset_peak(device)
        net = _prepared_net(row_cfg, device, cfg.seed)
        size = describe_network(net, cfg.image_size)
        step = TrainStep(row_cfg, net, build_objective(row_cfg), device, cfg.seed)
        times = summary_ms(timings(step, cfg.repeats, cfg.warmup, sync))
        rows[row] = {
            "variant": net.variant,
            "experiment": experiment,
            "parameters": size["params"],
            # Per image at the bench's crop: 2 per multiply-accumulate of convolutions and matrix
            # products (models/summary.py), as `train` logs them.
            "gflops": round(size["flops"] / 1e9, 4),
            "weight_penalty": OmegaConf.select(row_cfg, "model.objective.weight_penalty"),
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
    from ..training.objective import nuclear_norm

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
