"""Shared fixtures: a small synthetic dataset generated once per session, and Hydra configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from odn_lightning.config import CONFIG_DIR

os.environ.setdefault("WANDB_MODE", "offline")
torch.set_num_threads(2)

# Small, fast settings shared by every test that runs the training loop.
TINY = [
    "data.image_size=64",
    "data.batch_size=4",
    "data.eval_batch_size=8",
    "data.num_workers=0",
    "data.synthetic.image_size=128",
    "data.synthetic.sizes.train=24",
    "data.synthetic.sizes.val=8",
    "data.synthetic.sizes.common=8",
    "data.synthetic.sizes.challenging=4",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic dataset shared by the tests (generated once, ~1 s)."""
    from odn_lightning.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    ensure_synthetic(
        root, {"train": 24, "val": 8, "common": 8, "challenging": 4}, seed=0, image_size=128, progress=False
    )
    return root


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config as the entry point would, with the Hydra run directory set to `output_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name, overrides=[*overrides, f"hydra.run.dir={output_dir}"], return_hydra_config=True
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


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
    limits = ["trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=2"]
    overrides = [*TINY, f"data.root={synthetic_root}", f"paths.log_dir={tmp / 'logs'}", *limits]
    train(compose_config("train", [*overrides, "trainer.limit_test_batches=2"], tmp / "run"))
    return tmp / "run"
