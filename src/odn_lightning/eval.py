"""Evaluation entry point: `python -m odn_lightning.eval ckpt_path=PATH` (or `odn-eval`).

Without `data=`, the data config stored in the checkpoint is used, with the test-batch limit of the
run that wrote it: the run's own test numbers are reproduced. With `data=NAME` any dataset with the
same landmark scheme is evaluated, at the crop size the model was trained with unless
`data.image_size` is given too, and with that dataset's NME normalisation unless the training run
forced one.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from . import runs
from .callbacks import RUN_CONFIG_KEY
from .config import CONFIG_DIR, overridden
from .module import LandmarkModule
from .schemes import get_scheme


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path} does not exist; pass the .ckpt file of a training run")
    # Checkpoints hold configs (plain containers and OmegaConf objects), not only tensors.
    return torch.load(path, map_location="cpu", weights_only=False)


def eval_config(cfg: DictConfig, checkpoint: dict, overrides: list[str]) -> DictConfig:
    """Fill what the command line left open with the training run's settings: its model (rebuilt from
    the run's config; the weights come from the checkpoint) and, without `data=`, its data."""
    run = OmegaConf.create(checkpoint.get(RUN_CONFIG_KEY) or {})
    if "model" not in run:
        raise ValueError(f"{cfg.ckpt_path} holds no run config; pass the .ckpt file of a training run")
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.model = run.model
        # The weights come from the checkpoint: no ImageNet download or backbone file is needed.
        cfg.model.net.pretrained = False
        cfg.model.net.backbone_checkpoint = None
        if cfg.get("data") is None:
            if "data" not in run:
                raise ValueError(f"{cfg.ckpt_path} holds no data config; pass data=NAME")
            cfg.data = run.data
            limit = OmegaConf.select(run, "trainer.limit_test_batches")
            if limit is not None and not overridden("trainer.limit_test_batches", overrides):
                cfg.trainer.limit_test_batches = limit
        else:
            if "data" in run and not overridden("data.image_size", overrides):
                cfg.data.image_size = run.data.image_size
            # The evaluated dataset's scheme and, unless training forced one, its NME normalisation.
            cfg.model.scheme = "${data.scheme}"
            forced = run.model.nme_normalisation != OmegaConf.select(run, "data.nme_normalisation")
            if not forced:
                cfg.model.nme_normalisation = "${data.nme_normalisation}"
    trained, wanted = run.model.net.num_landmarks, get_scheme(cfg.data.scheme).num_landmarks
    if trained != wanted:
        raise ValueError(
            f"{cfg.ckpt_path} predicts {trained} points ({run.data.name}), but data={cfg.data.name} has "
            f"{wanted}: evaluate it on a dataset with the same landmark scheme"
        )
    return cfg


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, float]:
    checkpoint = load_checkpoint(cfg.ckpt_path)
    cfg = eval_config(cfg, checkpoint, overrides or [])
    runs.apply_extras(cfg)
    L.seed_everything(cfg.seed, workers=True)
    model: LandmarkModule = instantiate(cfg.model)
    model.load_state_dict(checkpoint["state_dict"])
    datamodule = instantiate(cfg.data)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=runs.instantiate_each(cfg.get("callbacks")),
        logger=runs.instantiate_each(cfg.get("logger")),
    )
    trainer.test(model, datamodule=datamodule)
    metrics = runs.scalar_metrics(trainer.callback_metrics)
    runs.write_metrics(cfg.paths.output_dir, metrics)
    runs.print_summary(
        "odn-eval", metrics, {"run directory": cfg.paths.output_dir, "checkpoint": cfg.ckpt_path}
    )
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    runs.run_reporting_user_errors(evaluate, cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    main()
