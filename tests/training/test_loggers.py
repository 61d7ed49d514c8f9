"""What the loggers get (the whole resolved config, flat), how a sweep shows on W&B (names, groups,
tags), and what a run prints: a quiet start, one results table, whole checkpoint paths."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hydra.core.hydra_config import HydraConfig

from odn_lightning import runs
from odn_lightning.train import train
from odn_lightning.training import run_identity

from ..helpers.configs import LIMITS, TINY, compose_config
from ..helpers.folders import passing_folder

# Values a dashboard must be able to filter and group by, each set away from its default.
CHOSEN = {"model.net.use_gm": False, "model.optimizer.lr": 0.0123, "seed": 7}


def tensorboard_hparams(events_dir: Path) -> dict:
    """The hyper-parameters of TensorBoard's HParams plugin in the event file, and its metric tags."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    accumulator = EventAccumulator(str(events_dir))
    accumulator.Reload()
    start = metadata.parse_session_start_info_plugin_data(
        accumulator.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    )
    experiment = metadata.parse_experiment_plugin_data(
        accumulator.SummaryMetadata(metadata.EXPERIMENT_TAG).plugin_data.content
    )
    values = {}
    for key, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        values[key] = getattr(value, kind)
    return {"hparams": values, "metrics": [info.name.tag for info in experiment.metric_infos]}


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory, synthetic_root):
    """One tiny run with CSV, TensorBoard and offline W&B, fit and test: its directory, metrics and
    console output. Its train.log is written as Hydra's job logging writes it."""
    with passing_folder(tmp_path_factory, "loggers") as tmp:
        yield run_in(tmp, synthetic_root)


def run_in(tmp: Path, synthetic_root: Path) -> tuple[Path, dict, str]:
    run = tmp / "run"
    run.mkdir()
    overrides = [
        *TINY,
        *LIMITS,
        f"data.root={synthetic_root}",
        f"paths.log_dir={tmp / 'logs'}",
        "logger=many",
        "callbacks.validation_pictures.count=0",
        *(f"{key}={value}" for key, value in CHOSEN.items()),
    ]
    root = logging.getLogger()
    log_file, level = logging.FileHandler(run / "train.log"), root.level
    root.addHandler(log_file)
    root.setLevel(logging.INFO)
    console = io.StringIO()
    # Nothing reaches the network: W&B offline, its files under tmp.
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(console):
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_DIR", str(tmp))
        try:
            metrics = train(compose_config("train", overrides, run))
        finally:
            root.removeHandler(log_file)
            root.setLevel(level)
            log_file.close()
    return run, metrics, console.getvalue()


def expect_run_values(hparams: dict) -> None:
    assert hparams["model.net.use_gm"] is False
    assert hparams["model.optimizer.lr"] == pytest.approx(CHOSEN["model.optimizer.lr"])
    assert hparams["seed"] == CHOSEN["seed"]
    assert hparams["data.name"] == "synthetic"
    assert hparams["data._target_"] == "odn_lightning.data.datamodule.LandmarkDataModule"
    assert hparams["choices.model"] == "odn"
    assert json.loads(hparams["data.test_splits"]) == ["common", "challenging", "full"]
    assert hparams["model/params"] > 1e6  # what NetworkSummary logged is kept
    assert not any(key == "hydra" or key.startswith("hydra.") for key in hparams)


def wandb_records(run_file: Path) -> Iterator:
    """The records of an offline W&B run's log (`run-<id>.wandb`, what `wandb sync` uploads): its
    header, then LevelDB-log chunks (crc32, length, type) in 32 KiB blocks, each record a protobuf.
    wandb 0.31 writes an offline run's config only there, not to files/config.yaml."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run log"
    position, block, payload = 7, 32768, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        payload += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            payload = b""
            yield record


def test_wandb_config_holds_the_whole_resolved_config_flat(logged_run):
    run, _, _ = logged_run
    (run_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    config, started = {}, None
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            started = record.run
        updates = (
            record.config.update if kind == "config" else record.run.config.update if kind == "run" else []
        )
        config.update({item.key: json.loads(item.value_json) for item in updates if item.key != "_wandb"})
    expect_run_values(config)
    # Grouped and tagged as run_identity.run_identity says; a single run's name is W&B's own.
    assert started.run_group == "synthetic" and list(started.tags) == ["dev", "synthetic", "odn"]


def test_csv_and_tensorboard_hparams_hold_it_too(logged_run):
    run, _, _ = logged_run
    expect_run_values(yaml.safe_load((run / "csv" / "hparams.yaml").read_text()))
    expect_run_values(yaml.safe_load((run / "tensorboard" / "hparams.yaml").read_text()))
    # The event file's HParams plugin data, as TensorBoard's dashboard reads it.
    # (fit and test each write an event file, into the one run folder)
    (events_dir,) = {events.parent for events in (run / "tensorboard").rglob("events.out.tfevents.*")}
    logged = tensorboard_hparams(events_dir)
    expect_run_values(logged["hparams"])
    assert logged["metrics"] == ["val/nme", "test/common/nme", "test/challenging/nme", "test/full/nme"]


def test_a_run_prints_one_results_table_and_its_checkpoints_whole(logged_run):
    run, metrics, console = logged_run
    record = json.loads((run / "run.json").read_text())
    best, last = Path(record["checkpoint/best"]), Path(record["checkpoint/last"])
    assert best.is_file() and best.parent == run / "checkpoints"
    assert last == run / "checkpoints" / "last.ckpt" and last.is_file()
    assert (record["run_name"], record["group"], record["tags"]) == (
        None,
        "synthetic",
        ["dev", "synthetic", "odn"],
    )
    # metrics.json keeps numbers only.
    written = json.loads((run / "metrics.json").read_text())
    assert written == metrics and all(v is None or isinstance(v, float) for v in written.values())
    # Quiet: no config dump, no Lightning test table (it repeats each split under every loader);
    # one row per split, and the paths each whole on one line, on the console and in train.log.
    assert "task_name" not in console and "DataLoader" not in console and "Test metric" not in console
    log = (run / "train.log").read_text()
    for text in (console, log):
        rows = [" ".join(line.replace("│", " ").split()) for line in text.splitlines()]
        assert sum(row.startswith("common 8 ") for row in rows) == 1
        lines = text.splitlines()
        assert f"best checkpoint: {best}" in lines and f"last checkpoint: {last}" in lines
    # Where the whole config is, said in one line at the start.
    assert f"{run / 'csv' / 'hparams.yaml'} (resolved, flat); extras.print_config=true prints it" in log


def sweep_job(sweep: Path, command_line: list[str], job: list[str]):
    """A job's config and Hydra node as in a multirun: the sweep's record (multirun.yaml, as Hydra
    writes it before launching) holds the command line, the job its own values."""
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {"task": command_line}}}))
    cfg = compose_config("train", [*job, "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep}"], sweep / "0")
    return cfg, HydraConfig.get()


def test_a_sweep_is_one_group_its_jobs_named_by_what_the_sweep_varies(tmp_path):
    sweep = tmp_path / "2030-01-02_03-04-05"
    sweep.mkdir()
    table4 = ["experiment=ablation", "model=brnet,odn"]
    # Table 4: the experiment names runs after their model; its group is the sweep's.
    name, group, tags = run_identity.run_identity(
        *sweep_job(sweep, table4, ["experiment=ablation", "model=odn"])
    )
    assert (name, group) == ("odn", f"table4-synthetic-{sweep.name}")
    assert tags[:3] == ["table4", "synthetic", "odn"] and len(tags) == len(set(tags))
    # With seeds, the seed tells a model's jobs apart.
    job = ["experiment=ablation", "model=odn", "seed=1"]
    assert run_identity.run_identity(*sweep_job(sweep, [*table4, "seed=0,1"], job))[:2] == (
        "odn seed=1",
        f"table4-synthetic-{sweep.name}",
    )
    # A seed sweep with no run_name: the swept overrides, not the fixed ones; a group given on the
    # command line is kept as given.
    assert run_identity.run_identity(*sweep_job(sweep, ["seed=range(0,3)", "data.batch_size=8"], ["seed=2"]))[
        :3
    ] == (
        "seed=2",
        f"synthetic-{sweep.name}",
        ["dev", "synthetic", "odn"],
    )
    job = ["seed=2", "data.batch_size=8", "group=mine"]
    assert run_identity.run_identity(*sweep_job(sweep, ["seed=0,1,2", "group=mine"], job))[:2] == (
        "seed=2",
        "mine",
    )


def test_a_single_run_keeps_its_configured_name_and_group(train_config):
    cfg = train_config("run_name=probe")
    assert run_identity.run_identity(cfg, HydraConfig.get()) == (
        "probe",
        "synthetic",
        ["dev", "synthetic", "odn"],
    )
    run_identity.name_group_and_tag(cfg)
    assert (cfg.run_name, cfg.group, list(cfg.tags)) == ("probe", "synthetic", ["dev", "synthetic", "odn"])
    assert cfg.logger.csv.save_dir == cfg.paths.output_dir  # the rest of the config is untouched


def test_hyperparameters_are_plain_values_under_dotted_keys(tmp_path):
    cfg = compose_config("train", ["model=brnet", "tags=[a,b]"], tmp_path)
    flat = run_identity.flat_hyperparameters(cfg)
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in flat.values())
    assert flat["model.net.use_gm"] is False and flat["model.objective.eta"] == cfg.model.objective.eta
    assert flat["choices.model"] == "brnet" and flat["choices.model/optimizer"] == "adamw"
    assert json.loads(flat["tags"]) == ["a", "b"] and flat["paths.output_dir"] == str(tmp_path)
    # Hydra's own node and its groups' choices (hydra/launcher, ...) are not the run's settings.
    assert not any(key.startswith(("hydra", "choices.hydra")) for key in flat)


def test_a_second_run_in_the_process_logs_lightning_into_its_own_file_only(tmp_path):
    """A sweep's jobs (basic launcher) or a notebook run one after another in one process: each run's
    Lightning messages go to that run's log file, not also to every earlier run's."""
    root, lightning = logging.getLogger(), logging.getLogger("lightning.pytorch")
    files = [logging.FileHandler(tmp_path / f"{job}.log", delay=True) for job in ("first", "second")]
    try:
        for handler in files:
            root.addHandler(handler)
            runs.log_to_run_file()
            root.removeHandler(handler)  # as Hydra reconfigures logging for the next job
        assert files[1] in lightning.handlers and files[0] not in lightning.handlers
    finally:
        for handler in files:
            lightning.removeHandler(handler)
            handler.close()


def test_a_new_csv_logger_in_a_runs_folder_continues_its_metrics_csv(tmp_path):
    """A run's stage that starts a new CSV logger (the test stage's processes under trainer=ddp_cpu)
    adds its rows to the file; Lightning's own logger deletes the file first."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = OmegaConf.load(Path(__file__).parents[2] / "conf" / "logger" / "csv.yaml").csv
    config.save_dir = str(tmp_path)
    for step, metrics in ((3, {"val/nme": 0.5}), (4, {"val/nme": 0.25}), (5, {"test/full/nme": 0.4})):
        logger = instantiate(config)  # a new logger for each stage
        logger.log_metrics(metrics, step=step)
        logger.save()
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == [
        "step,test/full/nme,val/nme",
        "3,,0.5",
        "4,,0.25",
        "5,0.4,",
    ]
