"""check_config: every shipped config passes, and each bad value is refused in one line naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from odn_lightning.config import CONFIG_DIR
from odn_lightning.config_checks import ConfigError, check_config

from .helpers.cli import user_error_in_process
from .helpers.configs import compose_config

CONF = Path(CONFIG_DIR)


def options(group: str) -> list[str]:
    """The selectable options; `_name.yaml` files are parts that options include."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def refusal(config_name: str, overrides: list[str], tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(compose_config(config_name, overrides, tmp_path / "run"))
    message = str(caught.value)
    assert "\n" not in message
    return message


SHIPPED = [
    (group, option)
    for group in ("experiment", "data", "model", "trainer", "debug")
    for option in options(group)
]


@pytest.mark.parametrize("group,option", SHIPPED, ids=[f"{g}={o}" for g, o in SHIPPED])
def test_every_shipped_option_passes(group, option, tmp_path):
    # Real datasets' default roots do not exist here: only a root that is a file is refused.
    check_config(compose_config("train", [f"{group}={option}"], tmp_path / "run"))


def test_eval_defaults_pass_before_and_after_the_checkpoint_fills_them(tmp_path):
    from odn_lightning.eval import eval_config
    from odn_lightning.training.callbacks import RUN_CONFIG_KEY

    cfg = compose_config("eval", ["ckpt_path=x"], tmp_path / "eval")
    check_config(cfg)  # no model yet, data.scheme and data.root null: from the checkpoint
    train_cfg = compose_config("train", [], tmp_path / "train")
    with open_dict(train_cfg):
        del train_cfg["hydra"]
    run = OmegaConf.to_container(train_cfg, resolve=True)
    check_config(eval_config(cfg, {RUN_CONFIG_KEY: run}, ["ckpt_path=x"]))


BAD = [
    ("data.batch_size", "abc"),
    ("data.batch_size", "0"),
    ("data.batch_size", "8.5"),
    ("data.batch_size", "true"),
    ("data.image_size", "-5"),
    ("data.image_size", "16"),
    ("data.num_workers", "-1"),
    ("data.crop_box", "nose"),
    ("data.on_bad_sample", "ignore"),
    ("data.nme_normalisation", "foo"),
    ("data.scheme", "nope"),
    ("data.scheme", "???"),
    ("data.batch_size", "${oops}"),
    ("model.optimizer.lr", "-1"),
    ("model.objective.coordinate_unit", "inches"),
    ("model.objective.weight_penalty", "sometimes"),
    ("model.net.num_landmarks", "10"),
    ("model.net.use_gm", "yes"),
    ("model.scheme", "cofw29"),
    ("trainer.max_epochs", "0"),
    ("trainer.limit_test_batches", "1.5"),
    ("seed", "abc"),
]


@pytest.mark.parametrize("key,value", BAD, ids=[f"{k}={v}" for k, v in BAD])
def test_bad_value_is_refused_naming_its_key(key, value, tmp_path):
    message = refusal("train", [f"{key}={value}"], tmp_path)
    assert message.startswith(f"{key}={value}"), message


def test_messages_say_what_to_give(tmp_path):
    assert refusal("train", ["data.batch_size=abc"], tmp_path) == (
        "data.batch_size=abc: expected a positive integer (e.g. data.batch_size=32)"
    )
    assert refusal("train", ["model.net.num_landmarks=10"], tmp_path) == (
        "model.net.num_landmarks=10 but data.scheme=ibug68 has 68 points; leave model.net.num_landmarks "
        "to its default `${odn.num_landmarks:${data.scheme}}`"
    )
    assert "down-samples by 32" in refusal("train", ["data.image_size=16"], tmp_path)


@pytest.mark.parametrize("data", ["synthetic", "w300"])
def test_a_data_root_that_is_a_file_is_refused(data, tmp_path):
    root = tmp_path / "faces.zip"
    root.write_text("not a folder")
    message = refusal("train", [f"data={data}", f"data.root={root}"], tmp_path)
    assert message.startswith(f"data.root={root} is a file; point it to ")
    if data == "synthetic":
        assert message.endswith("(the synthetic faces are generated there)")


def test_eval_refuses_bad_values_too(tmp_path):
    message = refusal("eval", ["ckpt_path=x", "data.batch_size=abc"], tmp_path)
    assert message.startswith("data.batch_size=abc: ")


def test_train_refuses_a_bad_value_in_one_line(tmp_path, capsys):
    # The data root does not exist and is not generated: unwired, the run would stop there, quickly.
    # In process, through train's own error handling (the train tests start the program itself).
    from odn_lightning.train import train

    overrides = [
        "data.batch_size=abc",
        f"data.root={tmp_path / 'none'}",
        "data.synthetic.generate=false",
        f"paths.log_dir={tmp_path / 'logs'}",
        "extras.print_config=false",
        "trainer.accelerator=cpu",
    ]
    code, lines = user_error_in_process(capsys, train, compose_config("train", overrides, tmp_path / "run"))
    assert code != 0 and lines[-1].startswith("error: data.batch_size=abc"), lines
