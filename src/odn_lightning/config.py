"""Hydra plumbing shared by the entry points: config location, resolvers, overrides.

Resolvers (usable in any config):
- `${odn.cwd:}`: the directory the command was started from.
- `${odn.num_landmarks:SCHEME}`: the point count of a landmark scheme (`odn_lightning.schemes`).
- `${odn.switch_tags:TAG,...}`: the given tags, then one per module switch of `model.net`
  (gm / no_gm, dm / no_dm, lm / no_lm and, with the distillation module, l1 / no_l1 by eta).
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .schemes import get_scheme

# conf/ sits at the repository root, next to src/ (the package is installed editable).
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def switch_tags(*tags: str, _root_: DictConfig) -> list[str]:
    net = _root_.model.net
    switches = [name if net[f"use_{name}"] else f"no_{name}" for name in ("gm", "dm", "lm")]
    if net.use_dm:
        switches.append("l1" if _root_.model.objective.eta > 0 else "no_l1")
    return [str(tag) for tag in tags] + switches


for _name, _resolver in (
    ("odn.cwd", os.getcwd),
    ("odn.num_landmarks", lambda scheme: get_scheme(scheme).num_landmarks),
    ("odn.switch_tags", switch_tags),
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)


def overridden(key: str, overrides: list[str]) -> bool:
    """Whether the command line set `key` (or a key below it), e.g. `data.image_size=128`."""
    for override in overrides:
        name = override.split("=", 1)[0].lstrip("+~")
        if name == key or name.startswith(key + "."):
            return True
    return False
