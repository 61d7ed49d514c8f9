"""Hydra plumbing shared by the entry points: config location, resolvers, overrides.

Resolvers (usable in any config):
- `${odn.root:}`: where `data/` and `logs/` go (`project_root`): $ODN_ROOT, else the repository.
- `${odn.synthetic_folder:seed,image_size,sizes}`: the synthetic faces' folder, named by their settings.
- `${odn.cwd:}`: the directory the command was started from.
- `${odn.num_landmarks:SCHEME}`: the point count of a landmark scheme (`odn_lightning.schemes`: a
  name or a declaration).
- `${odn.switch_tags:TAG,...}`: the given tags, then one per module switch of `model.net`
  (gm / no_gm, dm / no_dm, lm / no_lm and, with the distillation module, l1 / no_l1 by eta).
- `${odn.job_dirname:NUM,OVERRIDES}`: a sweep job's folder name, its number then its overrides, cut
  to a length every file system takes (`job_dirname`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .locations import CONFIG_DIR, REPOSITORY  # noqa: F401  (CONFIG_DIR: re-exported, as every entry point imports it)
from .schemes import get_scheme, is_builtin, scheme_declaration


def dotted_leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """A plain config's leaves, dotted key -> value (`prefix` before each key); a non-mapping is one leaf."""
    if not isinstance(node, Mapping):
        return {prefix: node}
    leaves: dict[str, Any] = {}
    for key, value in node.items():
        leaves.update(dotted_leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


# Where data/ and logs/ go, when set (else the repository): paths.root_dir.
ROOT_ENV = "ODN_ROOT"


def project_root() -> str:
    """`paths.root_dir`: $ODN_ROOT where set; else the repository the package is installed from, so
    that `odn-train` writes `data/` and `logs/` there from whatever directory it starts in; else (an
    install without the repository) the directory the command starts in."""
    given = os.environ.get(ROOT_ENV, "").strip()
    if given:
        return os.path.abspath(os.path.expanduser(given))
    if (REPOSITORY / "pyproject.toml").is_file() and (REPOSITORY / "conf").is_dir():
        return str(REPOSITORY)
    return os.getcwd()


# Longest job folder name: under the 255 bytes a name may have on ext4 and others.
JOB_DIRNAME_BYTES = 200


def job_dirname(number: int | str, overrides: str) -> str:
    """`<number>_<overrides>` (Hydra's override_dirname); beyond JOB_DIRNAME_BYTES the overrides are cut
    and a short hash of all of them added, so names stay unique, readable and legal. A `/` in a value
    (a path) becomes `_`."""
    name = f"{number}_{overrides}".replace("/", "_") if overrides else str(number)
    if len(name.encode()) <= JOB_DIRNAME_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    cut = name.encode()[: JOB_DIRNAME_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{cut}~{digest}"


def switch_tags(*tags: str, _root_: DictConfig) -> list[str]:
    net = _root_.model.net
    switches = [name if net[f"use_{name}"] else f"no_{name}" for name in ("gm", "dm", "lm")]
    if net.use_dm:
        switches.append("l1" if _root_.model.objective.eta > 0 else "no_l1")
    return [str(tag) for tag in tags] + switches


def synthetic_folder(seed: int, image_size: int, sizes: DictConfig) -> str:
    """The folder of the embedded synthetic faces under `data/synthetic/`, named by what was generated
    (`seed0-256px-train3148-val300-common554-challenging135`): faces of other sizes, seed or image size
    go beside, never over the ones another run reads."""
    counts = "-".join(f"{split}{int(count)}" for split, count in dict(sizes).items())
    return f"seed{int(seed)}-{int(image_size)}px-{counts}"


for _name, _resolver in (
    ("odn.root", project_root),
    ("odn.synthetic_folder", synthetic_folder),
    ("odn.cwd", os.getcwd),
    ("odn.num_landmarks", lambda scheme: get_scheme(scheme).num_landmarks),
    ("odn.switch_tags", switch_tags),
    ("odn.job_dirname", job_dirname),
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


def inline_declared_scheme(cfg: DictConfig) -> None:
    """Put the declaration a `data.scheme` (or a `model.scheme` of its own) names into the config in
    its place: a name of conf/scheme/ or a .yaml path becomes the mapping it declares. The run config
    stored with checkpoints then carries the scheme itself, so `odn-eval` rebuilds the same scheme in
    another process or checkout, with or without the file. Built-in names stay names."""
    for section in ("data", "model"):
        node = cfg.get(section)
        if (
            not isinstance(node, DictConfig)
            or "scheme" not in node
            or OmegaConf.is_interpolation(node, "scheme")
        ):
            continue
        spec = node.scheme
        if isinstance(spec, str) and not is_builtin(spec):
            with open_dict(node):
                node.scheme = scheme_declaration(get_scheme(spec))
