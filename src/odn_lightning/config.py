"""Hydra plumbing shared by the entry points: config location, resolvers, overrides."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

# conf/ sits at the repository root, next to src/ (the package is installed editable).
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")

if not OmegaConf.has_resolver("odn.cwd"):
    OmegaConf.register_new_resolver("odn.cwd", os.getcwd)


def overridden(key: str, overrides: list[str]) -> bool:
    """Whether the command line set `key` (or a key below it), e.g. `data.image_size=128`."""
    for override in overrides:
        name = override.split("=", 1)[0].lstrip("+~")
        if name == key or name.startswith(key + "."):
            return True
    return False
