"""Checkpoints are data, never code; faults while training stop the run naming their cause.

Each test injects one fault (a pickle or `_target_` payload, a truncated, empty or text checkpoint, a
checkpoint of another model, a folder that cannot be written, a non-finite loss or weights) and checks
what survives and what is said."""

from __future__ import annotations

import errno
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from odn_lightning.eval import evaluate
from odn_lightning.train import train
from odn_lightning.training.callbacks import RUN_CONFIG_KEY
from odn_lightning.training.checkpoints import AtomicCheckpointIO, CheckpointError, CheckpointWriteError
from odn_lightning.training.module import NonFiniteError

from ..helpers.cli import run_cli, user_error_in_process
from ..helpers.configs import LIMITS, compose_config
from .test_resume import fault


def eval_config(ckpt: Path, out: Path, *overrides: str):
    return compose_config(
        "eval", [f"ckpt_path={ckpt}", "trainer.enable_progress_bar=false", "pictures=0", *overrides], out
    )


@pytest.fixture
def last_ckpt(trained_run) -> Path:
    return trained_run / "checkpoints" / "last.ckpt"


class Payload:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "pwned"))


def test_a_pickle_payload_is_never_run(tmp_path):
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "payload.ckpt"
    with bad.open("wb") as f:
        pickle.dump({"state_dict": {}, "x": Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="pickled Python objects, which are never loaded"):
        evaluate(eval_config(bad, tmp_path / "eval"))
    assert not marker.exists()


def test_a_target_payload_in_the_run_config_is_refused(last_ckpt, tmp_path):
    marker = tmp_path / "created_by_target.txt"
    checkpoint = torch.load(last_ckpt, weights_only=True)
    checkpoint[RUN_CONFIG_KEY]["model"]["net"] = {
        "_target_": "builtins.open",
        "file": str(marker),
        "mode": "w",
    }
    bad = tmp_path / "target.ckpt"
    torch.save(checkpoint, bad)
    with pytest.raises(
        CheckpointError, match=r"model.net names 'builtins.open', which is not one of the suite's"
    ):
        evaluate(eval_config(bad, tmp_path / "eval"))
    assert not marker.exists()
    # A nested _target_ in an argument is refused too.
    checkpoint[RUN_CONFIG_KEY]["data"]["augmentation"] = {"_target_": "os.system", "command": "true"}
    checkpoint[RUN_CONFIG_KEY]["model"] = torch.load(last_ckpt, weights_only=True)[RUN_CONFIG_KEY]["model"]
    torch.save(checkpoint, bad)
    with pytest.raises(CheckpointError, match=r"data.augmentation asks to build 'os.system'"):
        evaluate(eval_config(bad, tmp_path / "eval"))


def test_a_checkpoint_written_before_training_was_a_room_still_builds(last_ckpt):
    """Checkpoints name their module and objective; those of runs before the move say
    odn_lightning.module and odn_lightning.losses, and still evaluate."""
    from odn_lightning.training.registry import build_trained_model

    checkpoint = torch.load(last_ckpt, weights_only=True)
    model = checkpoint[RUN_CONFIG_KEY]["model"]
    assert model["_target_"] == "odn_lightning.training.module.LandmarkModule"
    model["_target_"] = "odn_lightning.module.LandmarkModule"
    model["objective"]["_target_"] = "odn_lightning.losses.LandmarkObjective"
    module = build_trained_model(model, checkpoint["state_dict"], "old.ckpt")
    assert (
        type(module).__name__ == "LandmarkModule" and type(module.objective).__name__ == "LandmarkObjective"
    )


@pytest.mark.parametrize(
    "content,reason",
    [
        (None, "truncated"),  # the first half of a real checkpoint
        (b"", "empty"),
        (b"model: odn\nepochs: 3\n", "text"),
    ],
)
def test_a_corrupt_checkpoint_is_one_line_naming_it(last_ckpt, tmp_path, content, reason):
    bad = tmp_path / f"{reason}.ckpt"
    bad.write_bytes(last_ckpt.read_bytes()[: last_ckpt.stat().st_size // 2] if content is None else content)
    with pytest.raises(CheckpointError) as caught:
        evaluate(eval_config(bad, tmp_path / "eval"))
    message = str(caught.value)
    assert message.startswith(f"ckpt_path={bad} is not a readable checkpoint") and "\n" not in message


def test_eval_cli_refuses_without_checkpoint_or_with_a_corrupt_one(tmp_path, capsys):
    """One case as a user starts the program; the others in process, through the same error handling."""
    bad = tmp_path / "empty.ckpt"
    bad.write_bytes(b"")
    result = run_cli("odn_lightning.eval", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: ckpt_path={bad} is not a readable checkpoint"), result.stderr[-2000:]
    for args, start in (
        ([], "error: no checkpoint given: pass ckpt_path="),
        ([f"ckpt_path={tmp_path / 'missing.ckpt'}"], "error: ckpt_path="),
    ):
        code, lines = user_error_in_process(
            capsys, evaluate, compose_config("eval", args, tmp_path / "eval"), args
        )
        assert code == 1
        assert lines[-1].startswith(start)


def test_eval_takes_overrides_of_the_stored_data_config(last_ckpt, tmp_path):
    overrides = ["data.eval_batch_size=3", "trainer.limit_test_batches=1"]
    metrics = evaluate(eval_config(last_ckpt, tmp_path / "eval", *overrides), overrides)
    # One batch of 3 faces per split: the override reached the loaders.
    assert metrics["test/common/faces"] == 3
    assert metrics["test/common/faces_in_split"] == 8


def test_resuming_with_another_model_is_refused_naming_both(last_ckpt, train_config):
    cfg = train_config(*LIMITS, "model=brnet", f"ckpt_path={last_ckpt}")
    with pytest.raises(CheckpointError) as caught:
        train(cfg)
    message = str(caught.value)
    assert "belongs to another setup" in message and "model.net.use_gm: True -> False" in message
    assert "\n" not in message


def test_a_checkpoint_folder_that_cannot_be_written_stops_the_run_naming_it(train_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(CheckpointWriteError, match=r"checkpoints/.*: cannot write the checkpoint"):
        train(train_config(*LIMITS))


def test_a_full_disk_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def full_disk(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match="No space left on device"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert torch.equal(io.load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize("method", ["svd", "newton_schulz"])
def test_a_non_finite_loss_stops_the_run_naming_step_term_and_images(train_config, method):
    cfg = train_config(*LIMITS, f"model.objective.nuclear_norm_method={method}", *fault(1, "nan_loss"))
    with pytest.raises(NonFiniteError) as caught:
        train(cfg)
    message = str(caught.value)
    assert message.startswith("step 1 (epoch 0), batch of ") and ".jpg" in message
    assert "the eq.-3 term coord_l2 is not finite" in message and "\n" not in message


@pytest.mark.parametrize("method", ["svd", "newton_schulz"])
def test_non_finite_weights_are_named_whichever_the_nuclear_norm(train_config, method):
    cfg = train_config(*LIMITS, f"model.objective.nuclear_norm_method={method}", *fault(1, "nan_weights"))
    with pytest.raises(NonFiniteError, match=r"step 1 .*(low_rank.structural_matrix|eq.-3 term)"):
        train(cfg)


@pytest.mark.parametrize(
    "kind,what",
    [("nan_gradient", "the gradient of net.fc.weight"), ("nan_input", "the input image tensor")],
)
def test_a_non_finite_gradient_or_input_is_named(train_config, kind, what):
    with pytest.raises(NonFiniteError) as caught:
        train(train_config(*LIMITS, *fault(1, kind)))
    assert str(caught.value).startswith("step 1 (epoch 0), batch of ")
    assert f"{what} is not finite" in str(caught.value)


def test_a_diverging_brnet_is_a_failure_not_a_perfect_score(train_config, tmp_path):
    with pytest.raises(NonFiniteError, match="is not finite"):
        train(train_config(*LIMITS, "model=brnet", "model.optimizer.lr=1e6"))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_skipping_non_finite_batches_finishes_and_counts_them(train_config, tmp_path, caplog):
    metrics = train(train_config(*LIMITS, "model.on_non_finite=skip", *fault(1, "nan_loss")))
    assert metrics["train/skipped_batches"] == 2  # the batches after step 1: steps 2 and 3
    assert "skipped (model.on_non_finite=skip)" in caplog.text


def test_nan_predictions_are_failures_null_in_metrics_json_and_a_failed_run(last_ckpt, tmp_path):
    checkpoint = torch.load(last_ckpt, weights_only=True)
    checkpoint["state_dict"] = {
        k: v * float("nan") if k.endswith("fc.bias") else v for k, v in checkpoint["state_dict"].items()
    }
    broken = tmp_path / "nan.ckpt"
    torch.save(checkpoint, broken)
    with pytest.raises(NonFiniteError, match=r"test/common/nme.* not finite: the network predicts NaN"):
        evaluate(eval_config(broken, tmp_path / "eval"))
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["test/common/nme"] is None
    assert written["test/common/fr_08"] == written["test/common/fr_10"] == 1.0
    assert written["test/common/auc_10"] == 0.0
