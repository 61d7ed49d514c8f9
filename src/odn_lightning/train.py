"""Training entry point: `python -m odn_lightning.train` (or `odn-train`), configured by conf/train.yaml."""

from __future__ import annotations

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from . import runs
from .callbacks import RunConfigInCheckpoint
from .config import CONFIG_DIR


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the flat metrics also written to metrics.json."""
    runs.apply_extras(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = runs.instantiate_each(cfg.get("callbacks"))
    callbacks.append(RunConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=runs.instantiate_each(cfg.get("logger"))
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = runs.scalar_metrics(trainer.callback_metrics)
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None else ""
    if cfg.get("test"):
        # Without a checkpoint (fast_dev_run, no callbacks) the weights in memory are tested.
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=False)
        metrics.update(runs.scalar_metrics(trainer.callback_metrics))
    output_dir = cfg.paths.output_dir
    runs.write_metrics(output_dir, metrics)
    runs.print_summary(
        "odn-train", metrics, {"run directory": output_dir, "best checkpoint": best or "(none)"}
    )
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = runs.run_reporting_user_errors(train, cfg)
    # For Hydra sweepers that optimise a value.
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
