"""Shared fixtures: a small synthetic dataset generated once per session, configs, one trained run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from .helpers.configs import LIMITS, TINY, compose_config
from .helpers.folders import built_once

os.environ.setdefault("WANDB_MODE", "offline")
# Under pytest-xdist each of the workers (one per core) gets one thread, as do the commands its tests
# start: two workers of two threads on two cores run slower than one.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset shared by the tests (the splits of TINY; generated once, ~1 s)."""
    from odn_lightning.data.synthetic import ensure_synthetic

    def build(root: Path) -> None:
        splits = {"train": 24, "val": 8, "common": 8, "challenging": 4}
        ensure_synthetic(root, splits, seed=0, image_size=128, progress=False)

    return built_once(tmp_path_factory, "synthetic", build)


@pytest.fixture
def train_config(tmp_path, synthetic_root):
    """`train_config(*overrides)`: the training config on the tiny synthetic data, output in tmp_path."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        base = [*TINY, f"data.root={synthetic_root}", f"paths.log_dir={tmp_path / 'logs'}"]
        return compose_config("train", [*base, *overrides], output_dir or tmp_path / "run")

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synthetic_root) -> Path:
    """One tiny training run (ODN, with its distillation module) and its test report, shared by the
    report and notebook tests."""
    from odn_lightning.train import train

    def build(folder: Path) -> None:
        # With pictures: the report and notebook tests read them.
        logs = f"paths.log_dir={folder / 'logs'}"
        overrides = [*TINY, *LIMITS, f"data.root={synthetic_root}", logs, "pictures=2"]
        train(compose_config("train", overrides, folder / "run"))

    return built_once(tmp_path_factory, "trained_run", build) / "run"


# Test modules with a module-scoped fixture (a training run, an export: seconds each to build).
MODULE_FIXTURE = re.compile(r"@pytest\.fixture\(\s*scope=\"module\"")


def pytest_xdist_make_scheduler(config, log):
    """`make test` (`--dist loadgroup`): each test module with a module-scoped fixture goes to one
    worker whole, which builds the fixture once instead of once per worker; every other test is dealt
    out on its own. Done here because xdist's own loadgroup no longer groups under pytest 9.2 (the
    group it appends to the node id is ignored: pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    tests = Path(__file__).parent
    sharing = {
        path.relative_to(tests.parent).as_posix()
        for path in tests.rglob("test_*.py")
        if MODULE_FIXTURE.search(path.read_text())
    }

    class ModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return module if module in sharing else nodeid

    return ModuleFixtureScheduling(config, log)


# The longest module kept whole: README's commands, one session in order (about 3 minutes on one
# worker). It starts first, while the other worker takes everything else.
FIRST = "test_readme_commands.py"


def pytest_collection_modifyitems(items):
    """FIRST, then the slow tests (a training process, several seconds each), in their order, then the
    rest: the workers of `make test` then finish together on short tests rather than one waiting on
    another's last long one. A module the scheduler keeps whole starts where its first test stands
    (`--no-loadscope-reorder`: xdist would otherwise put the modules with most tests first)."""
    items.sort(key=lambda item: (item.path.name != FIRST, item.get_closest_marker("slow") is None))
