"""Refuse bad config values before a run starts, in one line: the key, the value and what to give.

`check_config(cfg)` runs on the composed config at the start of `train` and `eval`, so that
`data.batch_size=abc` ends the run with `error: data.batch_size=abc: expected a positive integer
(e.g. data.batch_size=32)` rather than a traceback from deep inside PyTorch or Lightning. Only keys the
config holds are checked (eval's config has no `model` until the checkpoint fills it); the first
problem found is reported. Values Lightning checks well itself (`trainer.precision`, devices) are
left to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.seed import max_seed_value, min_seed_value
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from .config import inline_declared_scheme
from .data.dataset import CROP_BOXES, ON_BAD_SAMPLE
from .evaluation.metrics import DEFAULT_SPLIT, NORMALISATIONS
from .models.low_rank import READOUTS
from .schemes import SCHEME_KEYS, SchemeError, get_scheme, scheme_names
from .training.module import ON_NON_FINITE
from .training.objective import COORDINATE_UNITS, WEIGHT_PENALTIES

# eval's `data` before the checkpoint fills it (conf/data/_from_checkpoint.yaml): scheme and root
# are still null there, and come from the checkpoint.
FROM_CHECKPOINT = "from_checkpoint"
_ABSENT = object()


class ConfigError(ValueError):
    """A config value the run cannot use. The message is one line: `key=value: what to give`."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split("\n")))


# A check returns None for a good value, else what is expected ("a positive integer").
Check = Callable[[Any], str | None]


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but `data.batch_size=true` is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def positive_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 1 else "a positive integer"


def non_negative_int(value: Any) -> str | None:
    return None if _is_int(value) and value >= 0 else "an integer >= 0"


def int_at_least(low: int, why: str = "") -> Check:
    return lambda value: None if _is_int(value) and value >= low else f"an integer >= {low}{why}"


def number_at_least(low: float) -> Check:
    return lambda value: None if _is_number(value) and value >= low else f"a number >= {low}"


def number_above(low: float) -> Check:
    return lambda value: None if _is_number(value) and value > low else f"a number > {low}"


def number_between(low: float, high: float) -> Check:
    return lambda value: (
        None if _is_number(value) and low <= value <= high else f"a number in [{low}, {high}]"
    )


def one_of(values: tuple) -> Check:
    return lambda value: None if isinstance(value, str) and value in values else f"one of {', '.join(values)}"


def normalisation_setting(value: Any) -> str | None:
    """One NME normalisation for every split, or a mapping from split names (and `default`) to them."""
    expected = (
        f"one of {', '.join(NORMALISATIONS)}, or a mapping from split names (and {DEFAULT_SPLIT}) to them"
    )
    if isinstance(value, str):
        return None if value in NORMALISATIONS else expected
    if isinstance(value, DictConfig) and value and all(v in NORMALISATIONS for v in value.values()):
        return None
    return expected


def boolean(value: Any) -> str | None:
    # `model.net.use_gm=yes` arrives as the (truthy) string "yes": refuse it rather than guess.
    return None if isinstance(value, bool) else "true or false"


def nullable(check: Check) -> Check:
    def checked(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return problem and f"null or {problem}"

    return checked


def landmark_scheme(key: str) -> Check:
    """A scheme name (built-in or conf/scheme/NAME.yaml), a .yaml path or a declaration; a bad
    declaration is refused with its own line (the file or scheme, and what to fix)."""

    def check(value: Any) -> str | None:
        try:
            get_scheme(value)
        except SchemeError as err:
            raise ConfigError(f"{key}={_show(value)}: {err}") from None
        except (ValueError, TypeError):
            return (
                f"a landmark scheme: one of {', '.join(scheme_names())}, a .yaml file declaring one, or "
                f"a mapping of {', '.join(SCHEME_KEYS)}"
            )
        return None

    return check


def max_epochs(value: Any) -> str | None:
    # Lightning: -1 trains without an epoch limit, null falls back to its own default.
    ok = value is None or (_is_int(value) and (value >= 1 or value == -1))
    return None if ok else "an integer >= 1, or -1 for no limit"


def limit_batches(value: Any) -> str | None:
    # Lightning reads an int as a number of batches and a float as a fraction of them.
    ok = value is None or (_is_int(value) and value >= 0)
    ok = ok or (isinstance(value, float) and 0.0 <= value <= 1.0)
    return None if ok else "null, a number of batches >= 0, or a fraction in [0.0, 1.0]"


def seed_value(value: Any) -> str | None:
    # The range Lightning's seed_everything (NumPy's) accepts.
    ok = _is_int(value) and min_seed_value <= value <= max_seed_value
    return None if ok else f"an integer in [{min_seed_value}, {max_seed_value}]"


# The network strides 32: GM and the occlusion map P act on a ceil(image_size/32)^2 grid. Smaller crops
# still run (convolution padding) but give the same 1 x 1 grid from less image: 32 px is the least crop
# that fills one grid cell.
IMAGE_SIZE_WHY = (
    ", as the network down-samples by 32 and its GM and occlusion map P act on the image_size/32 grid"
)
OBJECTIVE_WEIGHTS = ("alpha", "beta", "gamma", "lam", "eta", "occlusion_weight")

# (key, check, an example value for the message), checked in this order; keys a config lacks are skipped.
# `seed` precedes data.seed (which interpolates it), data.scheme the model keys that interpolate it.
CHECKS: tuple[tuple[str, Check, str], ...] = (
    ("seed", seed_value, "42"),
    ("test", boolean, "true"),
    ("calibrate", boolean, "true"),
    ("data.scheme", landmark_scheme("data.scheme"), "ibug68"),
    ("data.image_size", int_at_least(32, IMAGE_SIZE_WHY), "224"),
    ("data.batch_size", positive_int, "32"),
    ("data.eval_batch_size", nullable(positive_int), "64"),
    ("data.num_workers", non_negative_int, "2"),
    ("data.pin_memory", boolean, "false"),
    ("data.crop_margin", number_at_least(0), "0.25"),
    ("data.crop_box", one_of(CROP_BOXES), "landmarks"),
    ("data.nme_normalisation", normalisation_setting, "inter_ocular"),
    ("data.on_bad_sample", one_of(ON_BAD_SAMPLE), "skip"),
    ("data.max_image_pixels", nullable(positive_int), "178956970"),
    ("data.seed", seed_value, "42"),
    ("data.augmentation.rotation", number_at_least(0), "15.0"),
    ("data.augmentation.translation", number_at_least(0), "0.05"),
    ("data.augmentation.flip", boolean, "true"),
    ("data.occlusion.probability", number_between(0, 1), "0.5"),
    ("data.synthetic.generate", boolean, "true"),
    ("data.synthetic.image_size", positive_int, "256"),
    ("trainer.max_epochs", max_epochs, "30"),
    *(
        (f"trainer.limit_{stage}_batches", limit_batches, "0.25")
        for stage in ("train", "val", "test", "predict")
    ),
    ("trainer.check_val_every_n_epoch", nullable(positive_int), "1"),
    ("trainer.accumulate_grad_batches", positive_int, "1"),
    ("model.scheme", landmark_scheme("model.scheme"), "ibug68"),
    ("model.nme_normalisation", normalisation_setting, "inter_ocular"),
    ("model.on_non_finite", one_of(ON_NON_FINITE), "skip"),
    ("model.channels_last", boolean, "true"),
    ("model.net.num_landmarks", positive_int, "68"),
    *(
        (f"model.net.{switch}", boolean, "true")
        for switch in ("use_gm", "use_dm", "use_lm", "pretrained", "visibility_head")
    ),
    ("model.net.visibility_channels", positive_int, "64"),
    ("model.net.readout", nullable(one_of(READOUTS)), "conv_pool"),
    ("model.optimizer.lr", number_above(0), "0.001"),
    *((f"model.objective.{weight}", number_at_least(0), "1e-5") for weight in OBJECTIVE_WEIGHTS),
    ("model.objective.coordinate_unit", one_of(COORDINATE_UNITS), "pixels"),
    ("model.objective.weight_penalty", one_of(WEIGHT_PENALTIES), "decoupled"),
)


def _show(value: Any) -> str:
    """A value as it would be written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    return str(value) if value != "" else "''"


def _raw(cfg: DictConfig, key: str) -> str:
    """The unresolved value of `key` (an interpolation that failed), or '?' where even that fails."""
    parent, _, name = key.rpartition(".")
    try:
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return _show(OmegaConf.to_container(node, resolve=False)[name])
    except Exception:
        return "?"


def _value(cfg: DictConfig, key: str, example: str) -> Any:
    """The resolved value of `key`, _ABSENT when the config lacks it; unresolvable values are refused."""
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except MissingMandatoryValue:
        raise ConfigError(f"{key}=???: not set; give it, e.g. {key}={example}") from None
    except OmegaConfBaseException as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"{key}={_raw(cfg, key)}: cannot be resolved ({reason}); fix the interpolation or give a value, "
            f"e.g. {key}={example}"
        ) from None


def check_values(
    cfg: DictConfig, checks: Sequence[tuple[str, Check, str]], skip_none: Sequence[str] = ()
) -> None:
    """Raise ConfigError, one line naming the key, for the first value of `checks` ((key, check, an
    example value), in order) that its check refuses; keys the config lacks, and the `skip_none` keys
    when null, are skipped. Every entry point's table goes through here (train/eval: CHECKS)."""
    for key, check, example in checks:
        value = _value(cfg, key, example)
        if value is _ABSENT or (value is None and key in skip_none):
            continue
        expected = check(value)
        if expected:
            raise ConfigError(f"{key}={_show(value)}: expected {expected} (e.g. {key}={example})")


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError, one line, for the first bad value of the composed config. When fine, a scheme
    named by its YAML file is replaced in `cfg` by its declaration (`config.inline_declared_scheme`)."""
    filled_later = _value(cfg, "data.name", "synthetic") == FROM_CHECKPOINT
    # A stored data config fills data.scheme in later (eval without data=).
    check_values(cfg, CHECKS, skip_none=("data.scheme",) if filled_later else ())
    _check_data_root(cfg, filled_later)
    _check_model_matches_data(cfg)
    _check_visibility_head(cfg)
    for key in ("data.nme_normalisation", "model.nme_normalisation"):
        _check_split_normalisations(cfg, key)
    # Train, eval and the data tools all start here: a scheme named by its YAML file goes into the
    # run config (and so into checkpoints) as the declaration itself.
    inline_declared_scheme(cfg)


def _check_split_normalisations(cfg: DictConfig, key: str) -> None:
    # A per-split mapping must name only splits the dataset has (a typo would fall to `default`
    # unseen) and cover every evaluated split.
    setting = _value(cfg, key, "inter_ocular")
    splits = _value(cfg, "data.splits", "{}")
    if not isinstance(setting, DictConfig) or not isinstance(splits, DictConfig):
        return
    unknown = [name for name in setting if name != DEFAULT_SPLIT and name not in splits]
    if unknown:
        raise ConfigError(
            f"{key} names split {unknown[0]!r}, which data={_show(_value(cfg, 'data.name', 'x'))} does not "
            f"have ({', '.join(splits)}); name one of them or `{DEFAULT_SPLIT}`"
        )
    tests = _value(cfg, "data.test_splits", "[common]")
    evaluated = [_value(cfg, "data.val_split", "val"), *(tests if isinstance(tests, ListConfig) else [])]
    uncovered = [s for s in evaluated if isinstance(s, str) and s not in setting]
    if uncovered and DEFAULT_SPLIT not in setting:
        missing = ", ".join(f"`{split}: inter_ocular`" for split in dict.fromkeys(uncovered))
        raise ConfigError(
            f"{key} gives no normalisation for split {', '.join(map(repr, dict.fromkeys(uncovered)))}; "
            f"add {missing} or a `{DEFAULT_SPLIT}` entry"
        )


def _check_data_root(cfg: DictConfig, filled_later: bool) -> None:
    # A missing root is the data module's to report (with how to get the data, or generating it);
    # a root that is a file would fail later with an obscure error, or the generator writing into it.
    root = _value(cfg, "data.root", "/path/to/data")
    if root is _ABSENT or (root is None and filled_later):
        return
    if root is None or isinstance(root, (bool, DictConfig, ListConfig)) or root == "":
        raise ConfigError(f"data.root={_show(root)}: expected a folder (e.g. data.root=/path/to/data)")
    if Path(str(root)).is_file():
        synthetic = _value(cfg, "data.synthetic", "null")
        if synthetic is not None and synthetic is not _ABSENT:
            raise ConfigError(
                f"data.root={root} is a file; point it to a folder (the synthetic faces are generated there)"
            )
        name = _value(cfg, "data.name", "synthetic")
        raise ConfigError(
            f"data.root={root} is a file; point it to the folder that holds the {_show(name)} dataset"
        )


def _check_model_matches_data(cfg: DictConfig) -> None:
    # Both schemes and the point count are valid by now (CHECKS); here they must agree.
    data_scheme = _value(cfg, "data.scheme", "ibug68")
    if data_scheme in (None, _ABSENT):
        return
    model_scheme = _value(cfg, "model.scheme", "ibug68")
    # Compared as schemes: a name and the declaration it stands for are the same scheme.
    if model_scheme is not _ABSENT and get_scheme(model_scheme) != get_scheme(data_scheme):
        raise ConfigError(
            f"model.scheme={_show(model_scheme)} but data.scheme={_show(data_scheme)}; leave model.scheme "
            "to its default `${data.scheme}`"
        )
    num_landmarks = _value(cfg, "model.net.num_landmarks", "68")
    points = get_scheme(data_scheme).num_landmarks
    if num_landmarks is not _ABSENT and num_landmarks != points:
        raise ConfigError(
            f"model.net.num_landmarks={num_landmarks} but data.scheme={_show(data_scheme)} has {points} points; "
            "leave model.net.num_landmarks to its default `${odn.num_landmarks:${data.scheme}}`"
        )


def _check_visibility_head(cfg: DictConfig) -> None:
    # The head learns only from the flags: without the supervision term its logits stay as initialised,
    # and a calibration fitted on them would present noise as occlusion.
    head = _value(cfg, "model.net.visibility_head", "false")
    weight = _value(cfg, "model.objective.occlusion_weight", "1.0")
    if head is True and _is_number(weight) and not weight > 0:
        raise ConfigError(
            "model.net.visibility_head=true needs model.objective.occlusion_weight > 0 (the head learns "
            "only from the visibility flags); e.g. model.objective.occlusion_weight=1.0"
        )
