"""The entry points end to end on tiny synthetic data: fit, checkpoints, metrics.json, eval, DDP, errors."""

from __future__ import annotations

import json

import pytest
import yaml

from odn_lightning.eval import evaluate
from odn_lightning.train import train

from ..helpers.cli import run_cli, user_error_in_process
from ..helpers.configs import LIMITS, TINY, TINY_SYNTHETIC, compose_config


def test_fast_dev_run_fits_and_tests_on_cpu(train_config, tmp_path):
    metrics = train(train_config("debug=fdr"))
    assert {"test/common/nme", "test/challenging/nme", "test/full/nme"} <= set(metrics)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == metrics


@pytest.mark.slow
def test_fit_keeps_checkpoints_and_eval_reproduces_test_nme(trained_run, tmp_path, monkeypatch, capsys):
    # The session's run: train(TINY + LIMITS), as a fixture shared with the report tests.
    run = trained_run
    metrics = json.loads((run / "metrics.json").read_text())
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file() and list((run / "checkpoints").glob("best-*.ckpt"))
    assert metrics["test/common/nme_mean_shape"] > 0
    # Each eq.-3 term's share of the loss at the last step: the shares make the whole.
    shares = {k: v for k, v in metrics.items() if k.startswith("train/share_")}
    assert {"train/share_coord_l2", "train/share_nuclear_M", "train/share_frobenius_conv"} <= set(shares)
    assert sum(shares.values()) == pytest.approx(1.0, rel=1e-5)
    # The network's size and cost, for Table 4: ODN at 64 px.
    assert metrics["model/params"] > 1e7 and metrics["model/image_size"] == 64 and metrics["model/flops"] > 0

    # The checkpoint as a user types it, relative to where the command starts: named whole in the records.
    monkeypatch.chdir(run)
    eval_dir = tmp_path / "eval"
    overrides = ["ckpt_path=checkpoints/last.ckpt", "trainer.enable_progress_bar=false", "pictures=0"]
    reproduced = evaluate(compose_config("eval", overrides, eval_dir), overrides)
    for split in ("common", "challenging", "full"):
        assert reproduced[f"test/{split}/nme"] == pytest.approx(metrics[f"test/{split}/nme"], rel=1e-6)
    assert (eval_dir / "metrics.json").is_file()
    assert json.loads((eval_dir / "run.json").read_text())["checkpoint"] == str(last)
    assert f"checkpoint: {last}\n" in capsys.readouterr().out
    assert f"checkpoint: {last}" in (eval_dir / "report.md").read_text()


@pytest.mark.slow
def test_eval_with_explicit_data_uses_the_trained_crop_size(trained_run, tmp_path, synthetic_root):
    last = trained_run / "checkpoints" / "last.ckpt"  # trained on TINY's 64 px crops
    overrides = [f"ckpt_path={last}", "data=synthetic", f"data.root={synthetic_root}", *TINY_SYNTHETIC]
    cfg = compose_config(
        "eval", [*overrides, "trainer.enable_progress_bar=false", "pictures=0"], tmp_path / "eval"
    )
    metrics = evaluate(cfg, overrides)
    assert metrics["test/full/nme"] > 0
    # data=synthetic defaults to 224 px crops; the model was trained on 64 px ones and is evaluated so:
    # the evaluation's resolved config, as its logger holds it.
    hparams = yaml.safe_load((tmp_path / "eval" / "csv" / "hparams.yaml").read_text())
    assert hparams["data.image_size"] == 64 and hparams["model.image_size"] == 64


@pytest.mark.slow
def test_overfitting_a_few_batches_drives_the_loss_down(train_config):
    cfg = train_config("debug=overfit", "trainer.max_epochs=15", "callbacks=none", "test=false")
    from hydra.utils import instantiate

    from odn_lightning.runs import instantiate_each

    datamodule, model = instantiate(cfg.data), instantiate(cfg.model)
    losses = []

    class Record:
        def on_train_epoch_end(self, trainer, module):
            losses.append(float(trainer.callback_metrics["train/loss"]))

    from lightning.pytorch import Callback

    recorder = type("Recorder", (Record, Callback), {})()
    trainer = instantiate(cfg.trainer, callbacks=[recorder], logger=instantiate_each(cfg.logger))
    trainer.fit(model, datamodule=datamodule)
    assert losses[-1] < 0.05 * losses[0], losses  # seeded: about 26 -> 0.38 in 15 epochs


@pytest.mark.slow
def test_unknown_group_option_lists_the_choices(tmp_path):
    result = run_cli("odn_lightning.train", "data=nope", f"paths.log_dir={tmp_path}")
    assert result.returncode != 0
    assert "Could not find 'data/nope'" in result.stderr
    assert "synthetic" in result.stderr and "w300" in result.stderr


def test_missing_data_root_is_one_line_naming_the_path(tmp_path, capsys):
    missing = tmp_path / "no_such_300W"
    overrides = ["data=w300", f"data.root={missing}", f"paths.log_dir={tmp_path}"]
    code, last_lines = user_error_in_process(
        capsys, train, compose_config("train", overrides, tmp_path / "run")
    )
    assert code != 0
    assert last_lines[-1].startswith(f"error: data.root={missing} does not exist")
    assert "Download 300W" in last_lines[-1] and "data=synthetic" in last_lines[-1]


@pytest.mark.slow
def test_many_loggers_write_csv_tensorboard_and_offline_wandb(train_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    metrics = train(train_config("logger=many", *LIMITS, "test=false", "pictures=2"))  # images logged too
    run = tmp_path / "run"
    assert "val/nme" in metrics
    assert "val/nme" in (run / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert list((run / "wandb").glob("offline-run-*"))
    # The validation pictures reach W&B (as media) and TensorBoard (as image summaries).
    assert list((run / "wandb").rglob("media/images/val/predictions*.png"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (run / "tensorboard").rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    assert "val/predictions" in accumulator.Tags()["images"]


def test_pretrained_weights_without_hub_or_file_is_one_line_naming_the_option(tmp_path, synthetic_root):
    result = run_cli(
        "odn_lightning.train",
        "model.net.pretrained=true",
        f"data.root={synthetic_root}",
        *TINY,
        f"paths.log_dir={tmp_path}",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode != 0
    last_line = [ln for ln in result.stderr.splitlines() if ln.strip()][-1]
    assert last_line.startswith("error: could not fetch ImageNet weights for resnet18")
    assert "model.net.backbone_checkpoint=PATH" in last_line


W300_TINY = [
    "data.image_size=64",
    "data.batch_size=2",
    "data.eval_batch_size=4",
    "data.num_workers=0",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def test_train_on_a_tree_in_the_300w_layout_with_its_split_names(tmp_path):
    from ..helpers.formats import write_300w

    root = tmp_path / "300W"
    write_300w(root)
    cfg = compose_config(
        "train",
        ["data=w300", f"data.root={root}", *W300_TINY, *LIMITS, f"paths.log_dir={tmp_path}"],
        tmp_path / "run",
    )
    metrics = train(cfg)
    for split in ("common", "challenging", "full"):
        assert metrics[f"test/{split}/nme"] > 0
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_data_check_cli_reports_the_300w_counts(tmp_path):
    from ..helpers.formats import write_300w

    root = tmp_path / "300W"
    write_300w(root)
    result = run_cli(
        "odn_lightning.data_check", "data=w300", f"data.root={root}", f"paths.log_dir={tmp_path}"
    )
    assert result.returncode == 1
    assert "split 'train' has 6 faces, the benchmark defines 3148" in result.stdout
    assert "split 'challenging' has 2 faces, the benchmark defines 135" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("error: 0 bad faces and 4 split counts off")


def test_eval_on_a_dataset_with_another_point_count_is_a_clear_error(train_config, tmp_path):
    train(train_config("debug=fdr", "callbacks=default"))
    (last,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
    cfg = compose_config("eval", [f"ckpt_path={last}", "data=cofw", f"data.root={tmp_path}"], tmp_path / "ev")
    with pytest.raises(ValueError, match=r"predicts 68 points \(synthetic\), but data=cofw has 29"):
        evaluate(cfg)
