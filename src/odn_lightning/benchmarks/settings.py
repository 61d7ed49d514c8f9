"""What a bench run may measure and how its config is checked: the sections, devices, runtimes, the
rows of Table 4 (conf/model) and the eq.-3 weights of the term shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .. import runs
from ..config import CONFIG_DIR
from ..config_checks import (
    IMAGE_SIZE_WHY,
    ConfigError,
    check_values,
    int_at_least,
    non_negative_int,
    nullable,
    one_of,
    positive_int,
)
from ..training.objective import WEIGHT_PENALTIES

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


def _config_names(group: str, shared: bool) -> list[str]:
    """The configs of conf/<group>/; `shared`: with the parts named `_...` (`_paper`, `_hrnet`) too."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml") if shared or p.stem[0] != "_")


def model_rows() -> list[str]:
    """The model configs (conf/model/<row>.yaml): the Table-4 rows and any others."""
    return _config_names("model", shared=False)


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
        if OmegaConf.select(cfg, "train.heatmap_rows"):
            _names(cfg, "train.heatmap_rows", rows, "model configs")
            recipe, recipes = (
                OmegaConf.select(cfg, "train.heatmap_experiment"),
                _config_names("experiment", True),
            )
            if recipe is not None and recipe not in recipes:
                raise ConfigError(
                    f"train.heatmap_experiment={recipe}: no conf/experiment/{recipe}.yaml; choose one of "
                    f"{', '.join(recipes)} or null"
                )
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
