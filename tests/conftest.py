"""Shared fixtures: a small synthetic dataset generated once per session, configs, one trained run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from .helpers.configs import LIMITS, TINY, compose_config

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

    root = tmp_path_factory.mktemp("synthetic")
    ensure_synthetic(
        root, {"train": 24, "val": 8, "common": 8, "challenging": 4}, seed=0, image_size=128, progress=False
    )
    return root


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

    tmp = tmp_path_factory.mktemp("report")
    overrides = [*TINY, *LIMITS, f"data.root={synthetic_root}", f"paths.log_dir={tmp / 'logs'}"]
    train(compose_config("train", overrides, tmp / "run"))
    return tmp / "run"


def pytest_collection_modifyitems(items):
    """The slow tests (a training process, several seconds each) first, in their order, then the rest:
    the workers of `make test -n auto` then finish together on short tests rather than one waiting on
    another's last long one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
