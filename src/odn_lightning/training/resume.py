"""Resuming a run (`ckpt_path=`): the checkpoint it names, checked against the new run's config. A resumed
run must share its network, objective, optimiser and data with the run that wrote the checkpoint, and,
under a schedule planned over the whole run (one-cycle), its number of optimiser steps. The rows logged
before the resume are set beside the run's metrics.csv (`set_aside_csv_metrics`), which starts afresh:
the steps redone after a kill past the last checkpoint are not listed twice."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import dotted_leaves
from ..runs import csv_log_dir
from .callbacks import RUN_CONFIG_KEY
from .checkpoints import (
    CheckpointError,
    differences,
    load_checkpoint,
    read_weights_only,
    resolve_ckpt_path,
    run_directory,
)

log = logging.getLogger(__name__)

# What a resumed run must share with the run that wrote the checkpoint.
RESUME_MUST_MATCH = [
    "model._target_",
    "model.net",
    "model.objective",
    "model.optimizer._target_",  # another optimiser's state does not load (a new lr may)
    "data.name",
    "data.scheme",
    "data.image_size",
]

# What sets the number of optimiser steps: a schedule planned over the whole run (one-cycle's
# total_steps) cannot continue past the end it was planned for, nor be stretched, once under way.
STEP_SETTINGS = [
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.limit_train_batches",
    "trainer.accumulate_grad_batches",
    "trainer.devices",
    "trainer.num_nodes",
    "data.batch_size",
]


# What does not make another run: where files go, how it is named, logged, shown and checked, its
# callbacks, loader workers and whether it tests. `ckpt_path=last` continues only a run that equals the
# command in every other resolved setting (network, objective, optimiser, data, trainer, seed).
NOT_THE_RUN = (
    "hydra",
    "paths",
    "ckpt_path",
    "task_name",
    "run_name",
    "group",
    "tags",
    "extras",
    "logger",
    "callbacks",
    "test",
    "pictures",
    "optimized_metric",
    "data.num_workers",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
)


def run_settings(config: dict) -> dict[str, object]:
    """A resolved config's settings, dotted key -> value, but for those of NOT_THE_RUN; a path inside the
    run's own directory (trainer.default_root_dir, ...) is said relative to it, as `<run>/...`."""
    run = str((config.get("paths") or {}).get("output_dir") or "") or None
    settings: dict[str, object] = {}
    for key, value in dotted_leaves(config).items():
        if any(key == name or key.startswith(f"{name}.") for name in NOT_THE_RUN):
            continue
        if run and isinstance(value, str) and (value == run or value.startswith(f"{run}/")):
            value = "<run>" + value[len(run) :]
        settings[key] = value
    return settings


def setting_changes(stored: dict, current: dict) -> list[str]:
    """`key: stored -> current` for each setting of `run_settings` that differs."""
    old, new = run_settings(stored), run_settings(current)
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in dict.fromkeys([*old, *new])
        if old.get(k) != new.get(k)
    ]


def resume_checkpoint(cfg: DictConfig) -> Path | None:
    """The checkpoint `ckpt_path` names (`last`: of a run of this command's settings), checked against
    this run's config; the run continues in the checkpoint's run directory (so its best checkpoint stays
    tracked)."""
    current = OmegaConf.to_container(cfg, resolve=True)

    def changes_from(path: Path) -> list[str]:
        stored = read_weights_only(path, mmap=True).get(RUN_CONFIG_KEY)
        return setting_changes(stored, current) if isinstance(stored, dict) else ["no run config stored"]

    path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir, cfg.paths.log_dir, changes_from)
    if path is None:
        return None
    checkpoint = load_checkpoint(path)
    stored = checkpoint.get(RUN_CONFIG_KEY)
    if not isinstance(stored, dict):
        raise CheckpointError(
            f"ckpt_path={path} holds no run config; pass a checkpoint of an odn-lightning run"
        )
    changed = differences(stored, OmegaConf.to_container(cfg, resolve=True), RESUME_MUST_MATCH)
    if changed:
        raise CheckpointError(
            f"ckpt_path={path} belongs to another setup ({'; '.join(changed[:4])}); resume it with the "
            "command that started it, or start a new run without ckpt_path"
        )
    planned = [scheduler.get("total_steps") for scheduler in checkpoint.get("lr_schedulers") or []]
    changed = differences(stored, OmegaConf.to_container(cfg, resolve=True), STEP_SETTINGS)
    if any(planned) and changed:
        raise CheckpointError(
            f"ckpt_path={path}: its schedule was planned for {planned[0]} optimiser steps, and this run "
            f"changes the step count ({'; '.join(changed[:3])}); resume with the settings it was "
            "started with, or start a new run (without ckpt_path) with the new ones"
        )
    run_dir = run_directory(path)
    step = int(checkpoint.get("global_step") or 0)
    if run_dir is not None and run_dir.resolve() != Path(cfg.paths.output_dir).resolve():
        continue_records_in(run_dir, Path(cfg.paths.output_dir), step)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)
    log.info(
        f"resuming {path} (epoch {checkpoint.get('epoch')}, step {checkpoint.get('global_step')}): the rest "
        "of the run sees the faces, in the order and with the augmentations, of the uninterrupted run "
        "(both are functions of seed, epoch and face), so it ends with the same weights"
    )
    set_aside_csv_metrics(cfg, step)
    return path


def continue_records_in(run_dir: Path, new_dir: Path, step: int) -> None:
    """The records of a resumed run go to the run it continues, not to the folder Hydra made for the
    command: its config (`.hydra/`) into `<run>/.hydra/resumed_at_step<step>/`, its log file's lines
    so far and from now on appended to the run's log file of that name. The folder, left empty, goes."""
    hydra_files = new_dir / ".hydra"
    if hydra_files.is_dir():
        kept = run_dir / ".hydra" / f"resumed_at_step{step}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(kept, ignore_errors=True)  # a resume from the same step before: this one's
        hydra_files.replace(kept)
        log.info(f"the command's config: {kept}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        written = Path(handler.baseFilename)
        if written.parent.resolve() != new_dir.resolve():
            continue
        handler.close()
        root.removeHandler(handler)
        continued = run_dir / written.name
        with continued.open("a", encoding="utf-8") as out:
            out.write(written.read_text(encoding="utf-8") if written.is_file() else "")
        written.unlink(missing_ok=True)
        moved = logging.FileHandler(continued, mode="a", encoding="utf-8")
        moved.setLevel(handler.level)
        moved.setFormatter(handler.formatter)
        root.addHandler(moved)
    if new_dir.is_dir() and not any(new_dir.iterdir()):
        new_dir.rmdir()


def set_aside_csv_metrics(cfg: DictConfig, step: int) -> Path | None:
    """The run's csv/metrics.csv, moved to metrics_until_step<step>.csv before the resumed run logs;
    returns where it went (None without one)."""
    folder = csv_log_dir(cfg)
    metrics = None if folder is None else folder / "metrics.csv"
    if metrics is None or not metrics.is_file():
        return None
    kept = metrics.with_name(f"metrics_until_step{step}.csv")
    metrics.replace(kept)
    log.info(f"the metrics logged before the resume: {kept}")
    return kept
