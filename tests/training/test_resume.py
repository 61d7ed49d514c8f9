"""Runs that survive: a run killed mid-epoch (SIGTERM or SIGKILL) and resumed with `ckpt_path=last`
ends with the metrics of the uninterrupted run, metric for metric; `last.ckpt` is always the newest
state; SIGTERM saves and exits 143. Real subprocesses, killed by a callback at a chosen step."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from odn_lightning.training.checkpoints import CheckpointError, resolve_ckpt_path

from ..helpers.cli import run_cli, user_error_in_process
from ..helpers.configs import TINY, compose_config
from ..helpers.folders import passing_folder

# 3 epochs of 5 steps: a kill at step 7 is in the middle of the second epoch.
STEPS_PER_EPOCH, EPOCHS = 5, 3
RUN = [
    *TINY,
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "extras.print_config=false",
]


def fault(step: int, kind: str) -> list[str]:
    return [
        "+callbacks.fault._target_=tests.helpers.faults.FaultAtStep",
        f"+callbacks.fault.step={step}",
        f"+callbacks.fault.fault={kind}",
    ]


def train_cli(run_dir: Path, root: Path, *overrides: str):
    """A run in `run_dir`, a folder of `<logs>/train/runs/` as Hydra would name it."""
    logs = run_dir.parents[2]
    return run_cli(
        "odn_lightning.train",
        *RUN,
        f"data.root={root}",
        f"paths.log_dir={logs}",
        f"hydra.run.dir={run_dir}",
        *overrides,
    )


def train_in_process(run_dir: Path, root: Path, *overrides: str) -> dict:
    """`train_cli`'s run in this process (a resume is no process-boundary matter; the kill is)."""
    from odn_lightning.train import train

    logs = run_dir.parents[2]
    overrides = [*RUN, f"data.root={root}", f"paths.log_dir={logs}", *overrides]
    return train(compose_config("train", overrides, run_dir))


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synthetic_root) -> Iterator[Path]:
    with passing_folder(tmp_path_factory, "uninterrupted") as folder:
        run_dir = folder / "logs" / "train" / "runs" / "a"
        result = train_cli(run_dir, synthetic_root)
        assert result.returncode == 0, result.stderr[-3000:]
        yield run_dir


@pytest.mark.slow
def test_last_ckpt_is_the_last_epoch_and_holds_only_plain_data(uninterrupted):
    checkpoints = uninterrupted / "checkpoints"
    # weights_only=True: tensors and plain containers, no pickled config objects.
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (EPOCHS - 1, EPOCHS * STEPS_PER_EPOCH)
    assert list(checkpoints.glob("best-*.ckpt")), "the best checkpoint is kept too"
    assert not list(checkpoints.glob(".*.tmp")), "no temporary checkpoint is left behind"
    # Lightning's messages reach the run's log file.
    log = (uninterrupted / "train.log").read_text()
    assert "max_epochs=3" in log and "final metrics: test/challenging/faces=4" in log


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,step,last_every",
    [
        ("sigterm", 7, "null"),  # saves the epoch under way (2 of its 5 steps) on the signal
        ("sigkill", 7, "2"),  # nothing saved at the kill: resumes from step 6
        ("sigkill", 7, "null"),  # resumes from the end of epoch 0
    ],
)
def test_killed_then_resumed_equals_uninterrupted(
    uninterrupted, synthetic_root, tmp_path, kind, step, last_every
):
    runs = tmp_path / "logs" / "train" / "runs"
    run_dir = runs / "first"
    every = f"callbacks.model_checkpoint.last_every_n_train_steps={last_every}"
    killed = train_cli(run_dir, synthetic_root, every, *fault(step, kind))
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    if kind == "sigterm":
        assert killed.returncode == 143, killed.stderr[-3000:]
        last_line = killed.stderr.strip().splitlines()[-1]
        assert last_line.startswith(f"error: SIGTERM at epoch 1, step {step}: saved ")
        assert "ckpt_path=last" in last_line
        assert saved["global_step"] == step
    else:
        assert killed.returncode == -9
        assert saved["global_step"] == (6 if last_every == "2" else STEPS_PER_EPOCH)
    assert not (run_dir / "metrics.json").exists()

    # The same command with ckpt_path=last, from a new Hydra run directory: the run continues in its own,
    # with its log and config, and the folder Hydra made for the command is gone.
    csv = run_dir / "csv" / "metrics.csv"
    before = csv.read_text() if csv.is_file() else None
    resumed = train_cli(runs / "second", synthetic_root, every, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr  # Lightning's warning; the suite's own statement instead:
    assert not (runs / "second").exists()
    log = (run_dir / "train.log").read_text()
    assert log.count("Seed set to 42") == 2 and "final metrics: test/" in log  # both commands' lines
    assert "runs/second" not in log.split("the command's config: ")[1]  # nothing names the folder gone
    assert f"resuming {run_dir / 'checkpoints' / 'last.ckpt'}" in log and "ends with the same weights" in log
    history = run_dir / ".hydra" / f"resumed_at_step{saved['global_step']}" / "overrides.yaml"
    assert "ckpt_path=last" in history.read_text()
    assert "ckpt_path=last" not in (run_dir / ".hydra" / "overrides.yaml").read_text()  # the first command
    # The rows logged before the kill are kept (Lightning's CSV logger starts metrics.csv afresh).
    kept = run_dir / "csv" / f"metrics_until_step{saved['global_step']}.csv"
    assert (kept.read_text() if kept.is_file() else None) == before
    assert "train/loss" in csv.read_text()
    assert metrics_of(run_dir) == metrics_of(uninterrupted)
    assert len(list((run_dir / "checkpoints").glob("best-*.ckpt"))) == 1


@pytest.mark.slow
def test_loader_workers_do_not_change_a_resumed_run(uninterrupted, synthetic_root, tmp_path):
    run_dir = tmp_path / "logs" / "train" / "runs" / "a"
    assert train_cli(run_dir, synthetic_root, "data.num_workers=2", *fault(7, "sigterm")).returncode == 143
    train_in_process(run_dir, synthetic_root, "data.num_workers=2", "ckpt_path=last")
    assert metrics_of(run_dir) == metrics_of(uninterrupted)


def test_ckpt_path_last_prefers_the_run_directory_then_the_newest(tmp_path):
    logs = tmp_path / "logs"
    older, newer = (logs / "train" / "runs" / name / "checkpoints" for name in ("a", "b"))
    for folder in (older, newer):
        folder.mkdir(parents=True)
        (folder / "last.ckpt").write_bytes(b"x")
    os.utime(older / "last.ckpt", (1, 1))
    assert resolve_ckpt_path("last", tmp_path / "new_run", logs) == newer / "last.ckpt"
    assert resolve_ckpt_path("last", older.parent, logs) == older / "last.ckpt"
    assert resolve_ckpt_path("some/file.ckpt", tmp_path, logs) == Path("some/file.ckpt")
    assert resolve_ckpt_path(None, tmp_path, logs) is None
    with pytest.raises(CheckpointError, match="no checkpoints/last.ckpt under"):
        resolve_ckpt_path("last", tmp_path, tmp_path / "empty")


def test_ckpt_path_last_continues_only_a_run_of_the_same_settings(uninterrupted, synthetic_root, tmp_path):
    # The newest last.ckpt under the logs is a sweep job's (seed 1); an older one is this command's run.
    from odn_lightning.training.callbacks import RUN_CONFIG_KEY
    from odn_lightning.training.resume import resume_checkpoint

    logs = tmp_path / "logs"
    ours, sweep_job = logs / "train" / "runs" / "ours", logs / "train" / "multiruns" / "s" / "1_seed-1"
    source = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    for run, seed in ((ours, None), (sweep_job, 1)):
        (run / "checkpoints").mkdir(parents=True)
        if seed is not None:  # data.seed is ${seed}
            source[RUN_CONFIG_KEY]["seed"] = source[RUN_CONFIG_KEY]["data"]["seed"] = seed
        torch.save(source, run / "checkpoints" / "last.ckpt")
    os.utime(ours / "checkpoints" / "last.ckpt", (1, 1))

    def command(*extra: str):
        overrides = [*RUN, f"data.root={synthetic_root}", f"paths.log_dir={logs}", "ckpt_path=last", *extra]
        return compose_config("train", overrides, tmp_path / "new")

    # Loader workers, checkpointing and what is shown do not make another run.
    extra = ["data.num_workers=2", "callbacks.model_checkpoint.last_every_n_train_steps=2", "pictures=3"]
    assert resume_checkpoint(command(*extra)) == ours / "checkpoints" / "last.ckpt"
    assert resume_checkpoint(command("seed=1")) == sweep_job / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError) as refused:
        resume_checkpoint(command("seed=7", "model.optimizer.lr=0.5"))
    message = str(refused.value)
    assert "\n" not in message
    assert f"the newest, {sweep_job}, differs (" in message
    assert "seed: 1 -> 7" in message and "model.optimizer.lr: " in message
    assert f"ckpt_path={sweep_job / 'checkpoints' / 'last.ckpt'}" in message


@pytest.mark.parametrize("change", ["trainer.max_epochs=4", "trainer.max_epochs=2", "data.batch_size=2"])
def test_a_resume_that_changes_the_step_count_is_refused_in_one_line(
    uninterrupted, synthetic_root, tmp_path, change, capsys
):
    # One-cycle's total_steps was planned from these settings: continuing past it, or stretching it, has
    # no defined schedule, so the run is refused before its first step.
    from odn_lightning.train import train

    logs = tmp_path / "logs"
    run_dir = logs / "train" / "runs" / "a"
    (run_dir / "checkpoints").mkdir(parents=True)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes((uninterrupted / "checkpoints" / "last.ckpt").read_bytes())
    overrides = [*RUN, f"data.root={synthetic_root}", f"paths.log_dir={logs}", "ckpt_path=last", change]
    code, lines = user_error_in_process(capsys, train, compose_config("train", overrides, run_dir))
    assert code == 1
    assert len([line for line in lines if line.startswith("error:")]) == 1
    key = change.split("=")[0]
    assert f"its schedule was planned for {EPOCHS * STEPS_PER_EPOCH} optimiser steps" in lines[-1]
    assert f"{key}:" in lines[-1] and not any("Traceback" in line for line in lines)


def test_a_resume_keeps_the_csv_rows_logged_before_it(tmp_path):
    """A resumed run continues in the same folder: the earlier rows are moved aside first, whole, and
    metrics.csv starts afresh (steps redone after a kill are not listed twice)."""
    from omegaconf import OmegaConf

    from odn_lightning.training.resume import set_aside_csv_metrics

    cfg = OmegaConf.create({"logger": {"csv": {"save_dir": str(tmp_path), "name": "csv", "version": ""}}})
    assert set_aside_csv_metrics(cfg, 7) is None  # nothing logged yet: nothing to keep
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,step,train/loss\n0,4,0.5\n")
    kept = set_aside_csv_metrics(cfg, 7)
    assert kept == tmp_path / "csv" / "metrics_until_step7.csv"
    assert kept.read_text() == "epoch,step,train/loss\n0,4,0.5\n"
    assert not (tmp_path / "csv" / "metrics.csv").exists()
