"""How a run is named, grouped and tagged on dashboards, and its config as the flat hyper-parameters
every logger gets (lightning-hydra-template's `log_hyperparameters`, flattened for filtering)."""

from __future__ import annotations

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict


def job_overrides(hydra: DictConfig) -> list:
    """The command-line overrides of this job (of a sweep: its own values), parsed."""
    return OverridesParser.create().parse_overrides(list(hydra.overrides.task))


def sweep_overrides(hydra: DictConfig) -> list[str]:
    """This job's overrides that its sweep varies, `key=value` in command-line order (`model=brnet`,
    `seed=1`): the keys the sweep's command line gives several values, or `hydra.sweeper.params`
    sweeps, as the sweep's record (multirun.yaml) has them. Without that record, every override."""
    job = job_overrides(hydra)
    record = Path(hydra.sweep.dir) / "multirun.yaml"
    if record.is_file():
        sweep = OmegaConf.load(record)
        command_line = list(OmegaConf.select(sweep, "hydra.overrides.task") or [])
        parsed = OverridesParser.create().parse_overrides(command_line)
        swept = {o.key_or_group for o in parsed if o.is_sweep_override()}
        swept |= set(OmegaConf.select(sweep, "hydra.sweeper.params") or {})
    else:
        swept = {o.key_or_group for o in job}
    return [f"{o.key_or_group}={o.get_value_element_as_str()}" for o in job if o.key_or_group in swept]


def run_identity(cfg: DictConfig, hydra: DictConfig | None) -> tuple[str | None, str | None, list[str]]:
    """How dashboards (W&B) name, group and tag a run, so that a sweep is one view with no hand work:
    - name: `run_name`, then in a multirun the job's swept overrides it does not already say
      (`model=brnet,seed=1`; `brnet seed=1` where an experiment names runs after their model);
    - group: in a multirun `<group>-<sweep folder>`, one group per sweep, unless the command line
      sets `group=` (e.g. several sweeps in one group); else `group`;
    - tags: `tags`, then the dataset's name and the model's (its `model=` choice), each once."""
    name, group = cfg.get("run_name"), cfg.get("group")
    tags = [str(tag) for tag in cfg.get("tags") or []]
    tags.append(str(OmegaConf.select(cfg, "data.name")))
    if hydra is not None:
        model = OmegaConf.select(hydra, "runtime.choices.model")
        if model:
            tags.append(str(model))
        if hydra.mode == RunMode.MULTIRUN:
            swept = [o for o in sweep_overrides(hydra) if o.split("=", 1)[1] != name]
            name = " ".join(part for part in (name, ",".join(swept)) if part) or None
            if not any(o.key_or_group == "group" for o in job_overrides(hydra)):
                group = f"{group or cfg.get('task_name')}-{Path(hydra.sweep.dir).name}"
    return name, group, list(dict.fromkeys(tags))


def name_group_and_tag(cfg: DictConfig) -> None:
    """Set `run_name`, `group` and `tags` to what the loggers show (`run_identity`), before they are
    built; the checkpoints' run config and the logged hyper-parameters hold them so too."""
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    name, group, tags = run_identity(cfg, hydra)
    with open_dict(cfg):
        cfg.run_name, cfg.group, cfg.tags = name, group, tags


HyperparameterValue = str | int | float | bool | None


def _flatten(node: object, key: str, out: dict[str, HyperparameterValue]) -> None:
    if isinstance(node, dict) and node:
        for name, value in node.items():
            _flatten(value, f"{key}.{name}" if key else str(name), out)
    elif isinstance(node, (dict, list, tuple)):
        # A dashboard filters on one value per key: a list (or an empty mapping) as its JSON text.
        out[key] = json.dumps(node, default=str)
    elif node is None or isinstance(node, (str, int, float, bool)):
        out[key] = node
    else:
        out[key] = str(node)


def flat_hyperparameters(cfg: DictConfig) -> dict[str, HyperparameterValue]:
    """The run's resolved config as flat dotted keys with plain values (`model.net.use_gm`,
    `model.optimizer.lr`, `data.name`, `data._target_`, `seed`, ...), for every logger, so runs can
    be filtered and grouped by any of them. Hydra's own node is left out; the options its config
    groups took are kept as `choices.<group>` (`choices.model`: brnet, odn, ...)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    flat: dict[str, HyperparameterValue] = {}
    _flatten(container, "", flat)
    if HydraConfig.initialized():
        for group, option in HydraConfig.get().runtime.choices.items():
            if group != "hydra" and not group.startswith("hydra/"):
                flat[f"choices.{group}"] = None if option is None else str(option)
    return flat
