"""Hydra configs composed as the entry points compose them, and the tiny settings of training tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from odn_lightning.config import CONFIG_DIR

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
    # No report or validation pictures (drawing them was most of a tiny test stage); the tests of the
    # pictures ask for them.
    "pictures=0",
]
# The synthetic splits TINY asks for (also what the session's `synthetic_root` fixture holds).
TINY_SYNTHETIC = [option for option in TINY if option.startswith("data.synthetic.")]
# A few batches per stage.
LIMITS = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
]


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


# `bench` at one repeat of everything at 64 px, batch 2: the keys and ratios, not the speeds.
TINY_BENCH = [
    "image_size=64",
    "batch_size=2",
    "repeats=1",
    "warmup=0",
    "device=cpu",
    "threads=1",  # the tests share the machine: no spinning thread pools
    "train.rows=[brnet,odn]",
    "train.heatmap_rows=[resnet18_heatmap]",
    "nuclear.dims=[8,16]",
    "data.faces=3",
    "data.render_size=256",
    "data.samples=3",
    "inference.networks=[odn]",
    "inference.batch_sizes=[1,2]",
]
