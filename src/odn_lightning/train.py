"""Training entry point: `python -m odn_lightning.train` (or `odn-train`), configured by conf/train.yaml.

`ckpt_path=last` (or a checkpoint's path) continues a run: in its own run directory, to the end the
command sets, with its best-checkpoint tracking, data order and augmentation exactly as an
uninterrupted run would have had them. SIGTERM (a preempted job) saves `last.ckpt` and exits 143.
"""

from __future__ import annotations

import logging

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from . import runs
from .config import CONFIG_DIR
from .config_checks import check_config
from .training import run_identity
from .training.callbacks import (
    HyperparametersToLoggers,
    NetworkSummary,
    RunConfigInCheckpoint,
)
from .training.resume import resume_checkpoint

log = logging.getLogger(__name__)


class Preempted(runs.RunError):
    """SIGTERM stopped the run; `last.ckpt` holds it. Exits 143 (128 + SIGTERM) so schedulers see it."""

    exit_code = 143


def train(cfg: DictConfig) -> dict[str, float | None]:
    """Fit, then test the best checkpoint; returns the flat metrics also written to metrics.json."""
    check_config(cfg)
    ckpt_path = resume_checkpoint(cfg)  # first: a resumed run logs into the run it continues
    runs.log_to_run_file()
    run_identity.name_group_and_tag(cfg)
    runs.apply_extras(cfg)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = runs.instantiate_each(cfg.get("callbacks"))
    callbacks.append(RunConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
    test_nmes = [f"test/{split}/nme" for split in OmegaConf.select(cfg, "data.test_splits") or []]
    callbacks.append(
        HyperparametersToLoggers(run_identity.flat_hyperparameters(cfg), ["val/nme", *test_nmes])
    )
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=runs.instantiate_each(cfg.get("logger"))
    )
    checkpoint = trainer.checkpoint_callback
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException as stop:
        saved = getattr(checkpoint, "last_model_path", "") or "(no checkpoint callback: nothing)"
        # Under DDP the workers say where they stopped; this process's trainer did not train.
        epoch, step = (
            getattr(stop, "epoch", trainer.current_epoch),
            getattr(stop, "step", trainer.global_step),
        )
        raise Preempted(
            f"SIGTERM at epoch {epoch}, step {step}: saved {saved}; "
            "continue with the same command and ckpt_path=last"
        ) from None
    metrics = runs.scalar_metrics(trainer.callback_metrics)
    # Read before testing: restoring the best checkpoint restores the paths it was saved with.
    best = checkpoint.best_model_path if checkpoint is not None else ""
    last = getattr(checkpoint, "last_model_path", "") or ""
    if cfg.get("test"):
        # Without a checkpoint (fast_dev_run, no callbacks) the weights in memory are tested.
        # verbose=False: Lightning's table repeats every split's numbers under each split's loader;
        # print_summary shows them once.
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        # With the faces evaluated per split (EvaluationReport adds them): a cut split says so.
        metrics.update(runs.scalar_metrics(trainer.callback_metrics))
    # The network's size and cost per image: Table 4 compares rows by them too.
    for callback in callbacks:
        if isinstance(callback, NetworkSummary):
            metrics.update({f"model/{k}": float(v) for k, v in callback.stats.items()})
    output_dir = cfg.paths.output_dir
    runs.write_metrics(output_dir, metrics)
    runs.write_run_record(
        output_dir,
        {
            "run_dir": str(output_dir),
            "run_name": cfg.run_name,
            "group": cfg.group,
            "tags": list(cfg.tags),
            "checkpoint/best": best or None,
            "checkpoint/last": last or None,
        },
    )
    runs.print_summary(
        "odn-train",
        metrics,
        {
            "run directory": output_dir,
            "best checkpoint": best or "(none)",
            "last checkpoint": last or "(none)",
        },
    )
    runs.log_metrics(metrics)
    runs.check_finite(metrics, output_dir)
    runs.finish_wandb()
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = runs.run_reporting_user_errors(train, cfg)
    # For Hydra sweepers that optimise a value.
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
