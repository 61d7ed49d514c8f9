"""Evaluation entry point: `python -m odn_lightning.eval ckpt_path=PATH` (or `odn-eval`).

The checkpoint is read weights-only and its model rebuilt from the suite's registry
(`odn_lightning.training.registry`), never from a `_target_` stored in it. Without `data=`, the data config
stored in the checkpoint is used, with any `data.KEY=VALUE` of the command line, and the test-batch
limit of the run that wrote it: the run's own test numbers are reproduced. With `data=NAME` any
dataset with the same landmark scheme is evaluated, at the crop size the model was trained with unless
`data.image_size` is given too, and with that dataset's NME normalisation unless the training run
forced one. With `calibrate=true` the occlusion calibration is refitted on the data's validation split
first (`evaluation.recalibration`), and the checkpoint written again with it (`recalibrated.ckpt`).
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from . import runs
from .config import CONFIG_DIR, overridden
from .config_checks import check_config
from .evaluation.benchmark_export import write_benchmark_files
from .evaluation.recalibration import RECALIBRATED_FILE, recalibrate, write_recalibrated
from .evaluation.reports import EvaluationReport
from .schemes import get_scheme
from .training import run_identity
from .training.callbacks import RUN_CONFIG_KEY, HyperparametersToLoggers
from .training.checkpoints import CheckpointError, load_checkpoint
from .training.registry import build_datamodule, build_trained_model

STORED_DATA = "from_checkpoint"


def eval_config(cfg: DictConfig, checkpoint: dict, overrides: list[str]) -> DictConfig:
    """Fill what the command line left open with the training run's settings: its model (rebuilt
    from the registry; the weights come from the checkpoint) and, without `data=`, its data."""
    run = OmegaConf.create(checkpoint.get(RUN_CONFIG_KEY) or {})
    if "model" not in run or "net" not in run.model:
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path} holds no run config; pass the .ckpt file of a training run"
        )
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model = run.model
        if cfg.data.name == STORED_DATA:
            if "data" not in run:
                raise CheckpointError(f"ckpt_path={cfg.ckpt_path} holds no data config; pass data=NAME")
            data = run.data.copy()
            for override in overrides:
                key = override.split("=", 1)[0].lstrip("+~")
                if key.startswith("data."):
                    OmegaConf.update(data, key[len("data.") :], OmegaConf.select(cfg, key), force_add=True)
            data.bad_samples_dir = cfg.data.bad_samples_dir
            cfg.data = data
            limit = OmegaConf.select(run, "trainer.limit_test_batches")
            if limit is not None and not overridden("trainer.limit_test_batches", overrides):
                cfg.trainer.limit_test_batches = limit
        else:
            if "data" in run and not overridden("data.image_size", overrides):
                cfg.data.image_size = run.data.image_size
            # The evaluated dataset's scheme and, unless training forced one, its NME normalisation.
            cfg.model.scheme = cfg.data.scheme
            forced = run.model.nme_normalisation != OmegaConf.select(run, "data.nme_normalisation")
            if not forced:
                cfg.model.nme_normalisation = cfg.data.nme_normalisation
    # (A run config without a point count is refused when its model is built from the registry.)
    trained = OmegaConf.select(run, "model.net.num_landmarks")
    wanted = get_scheme(cfg.data.scheme).num_landmarks
    if trained is not None and trained != wanted:
        raise CheckpointError(
            f"ckpt_path={cfg.ckpt_path} predicts {trained} points ({OmegaConf.select(run, 'data.name')}), "
            f"but data={cfg.data.name} has {wanted}: evaluate it on a dataset with the same landmark scheme"
        )
    return cfg


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, float | None]:
    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.ckpt_path in (None, ""):
        raise CheckpointError("no checkpoint given: pass ckpt_path=PATH/TO/run/checkpoints/last.ckpt")
    check_config(cfg)  # before reading a large checkpoint
    runs.name_paths_whole(cfg, ["ckpt_path"])  # in every record, as it is found
    checkpoint = load_checkpoint(cfg.ckpt_path)
    cfg = eval_config(cfg, checkpoint, overrides or [])
    check_config(cfg)
    run_identity.name_group_and_tag(cfg)
    runs.apply_extras(cfg)
    L.seed_everything(cfg.seed, workers=True)
    where = f"ckpt_path={cfg.ckpt_path}"
    runs.log_to_run_file()
    model = build_trained_model(
        OmegaConf.to_container(cfg.model, resolve=True), checkpoint["state_dict"], where
    )
    datamodule = build_datamodule(OmegaConf.to_container(cfg.data, resolve=True), where)
    callbacks = runs.instantiate_each(cfg.get("callbacks"))
    test_nmes = [f"test/{split}/nme" for split in OmegaConf.select(cfg, "data.test_splits") or []]
    callbacks.append(HyperparametersToLoggers(run_identity.flat_hyperparameters(cfg), test_nmes))
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=runs.instantiate_each(cfg.get("logger"))
    )
    notes = {"run directory": cfg.paths.output_dir, "checkpoint": cfg.ckpt_path}
    tested_from, validated = str(cfg.ckpt_path), {}
    if cfg.calibrate:
        fitted = recalibrate(trainer, model, datamodule, cfg.data.val_split)
        validated = runs.scalar_metrics(trainer.callback_metrics)  # the refit's figures (val/...)
        # Testing from ckpt_path would restore the checkpoint's own calibration: test these weights.
        tested_from = None
        for callback in callbacks:
            if isinstance(callback, EvaluationReport):
                callback.checkpoint = f"{cfg.ckpt_path}, calibration refitted on '{cfg.data.val_split}'"
        written = write_recalibrated(checkpoint, model, Path(cfg.paths.output_dir) / RECALIBRATED_FILE)
        notes["recalibrated checkpoint"] = f"{written} (validation AUROC {fitted.auroc:.3f})"
    # The weights are in the model already; ckpt_path names them in report.md (read weights-only).
    # verbose=False: print_summary shows each split's numbers once.
    trainer.test(model, datamodule=datamodule, ckpt_path=tested_from, verbose=False)
    metrics = validated | runs.scalar_metrics(trainer.callback_metrics)
    runs.write_metrics(cfg.paths.output_dir, metrics)
    runs.write_run_record(
        cfg.paths.output_dir,
        {
            "run_dir": str(cfg.paths.output_dir),
            "run_name": cfg.run_name,
            "group": cfg.group,
            "tags": list(cfg.tags),
            "checkpoint": str(cfg.ckpt_path),
        },
    )
    splits = OmegaConf.to_container(cfg.data.splits, resolve=True)
    written = write_benchmark_files(
        Path(cfg.data.root), splits, list(cfg.data.test_splits), Path(cfg.paths.output_dir)
    )
    if written:
        notes["benchmark results"] = "; ".join(written)
    runs.print_summary("odn-eval", metrics, notes)
    runs.log_metrics(metrics)
    runs.check_finite(metrics, cfg.paths.output_dir)
    runs.finish_wandb()
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(evaluate, cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
